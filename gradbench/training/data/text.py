"""Real natural-language text for the language-model task: Debian's `fortunes` package (the
fortune-mod quotations, jokes and sayings: about 2.4 MB of English prose), byte-level.

Laid out by `gradbench data text` (layout): the package comes from Debian's archive through
`apt-get download` and is unpacked with `dpkg-deb -x`, neither of which needs root; or, with
`--from DIR`, copied from an installed package (`/usr/share/games/fortunes`). The layout is
DATA/fortunes/: the text files, and SOURCE.json naming the package, its version, the .deb's
sha256 and the files in the order they are read.

Read (load_fortunes): the files concatenated in that order, cut into contiguous blocks of
`block` bytes; of every 20 blocks, the 19th goes to validation and the 20th to test, so each
split is whole passages from across the collection, never interleaved bytes. Each split is
then cut into non-overlapping windows of `context` + 1 bytes: x the first `context`, y the
next byte at each position (targets 0..255). No tokenizer: a byte is a token, so the loss in
bits is bits per byte.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
import subprocess
import tempfile

import torch

from ...core.errors import UserError
from .splits import Splits, fingerprint

PACKAGE = "fortunes"
# the version Debian 12 (bookworm) serves; another version lays out as well, and its
# fingerprint (in every record) tells the two apart
VERSION = "1:1.99.1-7.3"
FOLDER = "fortunes"
SOURCE = "SOURCE.json"
# pictures, not language
LEFT_OUT = frozenset({"ascii-art"})
INSTALLED = pathlib.Path("/usr/share/games/fortunes")
BLOCKS_PER_CYCLE, VAL_BLOCK, TEST_BLOCK = 20, 18, 19


def text_status(root) -> tuple[str, str]:
    """('ok' | 'missing', the folder looked at)."""
    folder = pathlib.Path(root).resolve() / FOLDER
    return ("ok" if (folder / SOURCE).is_file() else "missing"), str(folder)


def layout(root, source: str | None = None) -> pathlib.Path:
    """Lay out DATA/fortunes from Debian's package (apt-get download), or from an installed
    package's folder `source`. Already laid out: left alone."""
    dest = pathlib.Path(root).resolve() / FOLDER
    if (dest / SOURCE).is_file():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        if source is not None:
            files_dir, deb_sha, version = pathlib.Path(source), None, "installed"
            if not files_dir.is_dir():
                raise UserError(
                    f"--from {source}: no such folder (Debian's fortunes installs /usr/share/games/fortunes)"
                )
        else:
            deb = _download(tmp)
            deb_sha = hashlib.sha256(deb.read_bytes()).hexdigest()
            _run(["dpkg-deb", "-x", str(deb), str(tmp / "x")], "unpacking the package with dpkg-deb")
            files_dir, version = tmp / "x" / INSTALLED.relative_to("/"), VERSION
        names = sorted(
            p.name
            for p in files_dir.iterdir()
            if p.is_file() and not p.is_symlink() and not p.suffix and p.name not in LEFT_OUT
        )
        if not names:
            raise UserError(f"{files_dir}: no fortune text files in it")
        staged = tmp / "staged"
        staged.mkdir()
        for name in names:
            shutil.copyfile(files_dir / name, staged / name)
        total = sum((staged / n).stat().st_size for n in names)
        meta = {"package": PACKAGE, "version": version, "deb_sha256": deb_sha, "files": names, "bytes": total}
        (staged / SOURCE).write_text(json.dumps(meta, indent=1) + "\n")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), str(dest))  # the folder appears whole or not at all
    return dest


def _download(tmp: pathlib.Path) -> pathlib.Path:
    _run(["apt-get", "download", f"{PACKAGE}={VERSION}"], "downloading Debian's fortunes with apt-get", cwd=tmp)
    debs = list(tmp.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        raise UserError("apt-get download fortunes left no .deb")
    return debs[0]


def _run(cmd: list[str], what: str, cwd=None) -> None:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        done = None
    if done is None or done.returncode != 0:
        why = "not found" if done is None else (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise UserError(
            f"{what} failed ({cmd[0]}: {why}); on a machine without apt, install Debian's "
            f"'{PACKAGE}' package elsewhere and run 'gradbench data text --from /usr/share/games/fortunes'"
        )


def read_text(root) -> tuple[bytes, dict]:
    """The laid-out corpus (its files concatenated in SOURCE.json's order) and SOURCE.json."""
    folder = pathlib.Path(root).resolve() / FOLDER
    if not (folder / SOURCE).is_file():
        raise UserError(f"no text under {folder}: lay it out with 'gradbench data text --data {root}'")
    meta = json.loads((folder / SOURCE).read_text())
    return b"".join((folder / name).read_bytes() for name in meta["files"]), meta


def load_fortunes(root, context: int = 64, block: int = 16384) -> Splits:
    """Byte-level windows of the corpus, split by contiguous blocks (module docstring)."""
    if context < 1 or block < context + 1:
        raise UserError(f"fortunes: context={context} and block={block} need 1 <= context < block")
    text, _ = read_text(root)
    data = torch.frombuffer(bytearray(text), dtype=torch.uint8)
    blocks = data.split(block)
    parts = {"train": [], "val": [], "test": []}
    for i, b in enumerate(blocks):
        which = i % BLOCKS_PER_CYCLE
        parts["val" if which == VAL_BLOCK else "test" if which == TEST_BLOCK else "train"].append(b)
    tensors = {}
    for split, pieces in parts.items():
        windows = torch.cat(pieces) if pieces else data[:0]
        n = len(windows) // (context + 1)
        if n == 0:
            raise UserError(f"fortunes: the {split} split is shorter than one window of {context + 1} bytes")
        w = windows[: n * (context + 1)].view(n, context + 1).long()
        tensors[f"{split}_x"], tensors[f"{split}_y"] = w[:, :-1].contiguous(), w[:, 1:].contiguous()
    return Splits(
        **tensors,
        fingerprint=fingerprint(tensors),
        name="fortunes",
        num_classes=256,
        input_shape=(context, 256),
    )
