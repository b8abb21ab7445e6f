"""A suite file's YAML, read with bounds: what a small file may expand to is checked on the
composed node graph, before any value is built, so a hostile or broken file is one error line
and costs no memory or time ("billion laughs" aliases, nesting thousands deep, a key given
twice, an alias that contains itself)."""

from __future__ import annotations

import yaml

from ..core.errors import UserError

MAX_VALUES = 100_000  # scalars, lists and mappings once aliases are expanded
MAX_DEPTH = 50  # lists and mappings inside each other


def read_yaml(text: str, where: str):
    """The YAML document in `text` as Python values; a UserError naming `where` (the file) and
    the line for malformed YAML or a document past the bounds."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark else where
        raise UserError(f"{at}: malformed YAML: {getattr(e, 'problem', None) or e}") from None
    except RecursionError:
        raise UserError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    if node is None:
        return None
    _check(node, where)
    loader = yaml.SafeLoader(text)
    try:
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark else where
        raise UserError(f"{at}: malformed YAML: {getattr(e, 'problem', None) or e}") from None
    finally:
        loader.dispose()


def _check(root: yaml.Node, where: str) -> None:
    """Each node's expanded size and height, computed once per node (an alias is the same node
    again), so the check is linear in the file however large its expansion."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    open_: set[int] = set()

    def visit(node: yaml.Node) -> None:
        key = id(node)
        if key in size:
            return
        if key in open_:
            raise UserError(f"{where}:{node.start_mark.line + 1}: an alias that contains itself")
        if len(open_) > MAX_DEPTH:
            raise UserError(f"{where}:{node.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
        open_.add(key)
        children = _children(node, where)
        for child in children:
            visit(child)
        open_.discard(key)
        size[key] = 1 + sum(size[id(c)] for c in children)
        height[key] = 1 + max((height[id(c)] for c in children), default=0)
        if size[key] > MAX_VALUES:
            raise UserError(
                f"{where}:{node.start_mark.line + 1}: expands to more than {MAX_VALUES:,} values "
                "(YAML aliases repeated inside each other?); a suite needs far fewer"
            )

    visit(root)


def _children(node: yaml.Node, where: str) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for k, _ in node.value:
            if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                if k.value in seen:
                    raise UserError(
                        f"{where}:{k.start_mark.line + 1}: key {k.value!r} given twice "
                        f"(first on line {seen[k.value]}); YAML would keep the last one silently"
                    )
                seen[k.value] = k.start_mark.line + 1
        return [n for pair in node.value for n in pair]
    return []
