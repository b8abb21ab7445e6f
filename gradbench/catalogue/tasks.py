"""Tasks: dataset + model + loss + target metric + step budget + default optimizer.

Each task owns its target (AlgoPerf's habit) and is calibrated so that its baseline is
genuinely prone to explode at stress level lr_mult = 1 (docs/tasks.md, "what the baseline does").
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.errors import UserError
from ..core.registry import Registry
from ..core.spec import RunSpec

# a task's model that is the user's own builder, not one of gradbench's families: strategies
# apply to it by the knobs its builder takes (suite/expand.py), never by a family name
CUSTOM = "custom"
LOSSES = ("cross_entropy", "mse")
METRICS = ("accuracy", "mse", "bits_per_byte")


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    dataset: str  # a name in data.DATASETS
    model_family: str  # "mlp" | "cnn" | "rnn" (what strategies check to see if they apply) | CUSTOM
    loss: str  # "cross_entropy" | "mse"
    metric: str  # "accuracy" | "mse" | "bits_per_byte" (a language model's cross-entropy in bits per byte)
    higher_is_better: bool
    target: float  # validation metric that counts as "converged" (for speed)
    chance: float  # the metric of a model that learned nothing (diverged runs score this)
    optimizer: dict  # default optimizer and learning rate
    batch_size: int
    max_steps: int  # optimizer steps
    eval_every: int  # validate every this many steps
    num_outputs: int
    model: dict = field(default_factory=dict)  # model knobs (see model_knobs.py)
    data: dict = field(default_factory=dict)  # dataset parameters
    augment: bool = False
    # rough cost of one training step on one core of the reference machine (ms); only orders
    # parallel runs longest first, so a wrong guess costs packing, never a result
    cpu_ms_per_step: float = 10.0
    # examples per evaluation batch: a matter of speed (CPU caches); accuracy counts do not depend on it
    eval_batch_size: int = 1000
    # the SGD family's learning rate (sgd, sgd_momentum, nesterov at lr 0) on a task whose own
    # optimizer is not SGD: Adam's rate is not SGD's, so keeping it would test the rate, not
    # the optimizer (None: the task's own lr, as on the SGD tasks)
    sgd_lr: float | None = None
    # a plugin task's own data and model (register_task): data_fn(**data params) returns
    # (train_x, train_y, test_x, test_y), or with (val_x, val_y) after train; model_fn(input_shape,
    # num_outputs, **knobs) returns the nn.Module, its typed keyword parameters being the knobs
    data_fn: Callable | None = None
    model_fn: Callable | None = None

    def base_spec(self, seed: int, lr_mult: float, suite: str = "", **overrides) -> RunSpec:
        """The unmitigated run for this task at one seed and stress level."""
        spec = RunSpec(
            task=self.name,
            strategy="baseline",
            strategy_params={},
            seed=seed,
            lr_mult=lr_mult,
            model=dict(self.model),
            optimizer=dict(self.optimizer),
            schedule={"warmup_steps": 0, "decay": "none"},
            trainer={},
            data=dict(self.data),
            batch_size=self.batch_size,
            max_steps=self.max_steps,
            eval_every=self.eval_every,
            suite=suite,
        )
        return spec.replace(**overrides) if overrides else spec


TASKS: Registry[Task] = Registry("task")


def register_task(task: Task) -> Task:
    """Register a plugin task (a user's own data and model; examples/signal_task.py). Checked
    here, so a mistake is one line when the plugin loads, before anything trains: its
    functions' signatures and knobs, its defaults, its loss and metric. data_fn must be
    deterministic (every worker process calls it; gradbench seeds torch's generator for it)."""
    from .data_params import checked_task_data
    from .model_knobs import checked_task_knobs, fn_name

    where = f"task {task.name!r}"
    if task.name in TASKS:
        raise UserError(f"{where}: registered twice (a task name is unique: rename yours)")
    if task.model_family != CUSTOM or not callable(task.data_fn) or not callable(task.model_fn):
        raise UserError(f"{where}: a plugin task has model_family={CUSTOM!r}, a callable data_fn and a model_fn")
    if task.dataset != task.name:
        raise UserError(f"{where}: dataset must be the task's own name ({task.name!r}) for a plugin task")
    for field_name, value, valid in (("loss", task.loss, LOSSES), ("metric", task.metric, METRICS)):
        if value not in valid:
            raise UserError(f"{where}: {field_name} {value!r} is not one of {', '.join(valid)}")
    for fn, role, first in ((task.data_fn, "data_fn", 0), (task.model_fn, "model_fn", 2)):
        _check_signature(fn, role, first, where)
    try:  # the task's own defaults, typed by the functions' annotations
        checked_task_knobs(task, dict(task.model), f"{where}: model")
        checked_task_data(task, dict(task.data), f"{where}: data")
    except UserError:
        raise
    except Exception as e:  # an annotation pydantic cannot check, a name it cannot resolve
        raise UserError(
            f"{where}: the parameters of {fn_name(task.model_fn)} or {fn_name(task.data_fn)} "
            f"cannot be typed: {type(e).__name__}: {e}"
        ) from None
    return TASKS.add(task.name, task)


def _check_signature(fn, role: str, first: int, where: str) -> None:
    """model_fn takes (input_shape, num_outputs) first; every other parameter is a knob: a
    keyword with a default (no *args, **kwargs or positional-only ones)."""
    params = list(inspect.signature(fn).parameters.values())
    leading = [p for p in params[:first] if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(leading) < first:
        raise UserError(f"{where}: {role} must take (input_shape, num_outputs) first, then its knobs")
    for p in params[first:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise UserError(f"{where}: {role} takes *{p.name} or **{p.name}; name each knob (a keyword with a default)")
        if p.kind == p.POSITIONAL_ONLY:
            raise UserError(f"{where}: {role} parameter {p.name} is positional-only; a knob is a keyword")
        if p.default is inspect.Parameter.empty:
            raise UserError(f"{where}: {role} parameter {p.name} needs a default (it is a knob of the task)")


def priced_ms(task: str, steps: int) -> float:
    """A rough cost of `steps` training steps of `task` on one core: steps x its
    cpu_ms_per_step. Orders parallel runs and prices the ETA; never part of a result."""
    return steps * TASKS.get(task).cpu_ms_per_step


SGD_MOMENTUM = {"name": "sgd", "momentum": 0.9}

TASKS.add(
    "mnist_mlp",
    Task(
        name="mnist_mlp",
        description="MNIST, 8-hidden-layer ReLU MLP (width 256), SGD+momentum at lr 0.2: NaN within 1000 steps",
        dataset="mnist",
        model_family="mlp",
        loss="cross_entropy",
        metric="accuracy",
        higher_is_better=True,
        # tuned per arm (configs/discriminate.yaml's sweep), most arms pass 0.95 and the arms
        # that change the model or the optimizer's geometry (BatchNorm, Adam) pass 0.96 with
        # the rest at 0.951-0.962: 0.96 is the bar that tells them apart
        target=0.96,
        chance=0.1,
        optimizer={**SGD_MOMENTUM, "lr": 0.2},
        batch_size=128,
        max_steps=1000,
        eval_every=100,
        num_outputs=10,
        cpu_ms_per_step=10,
        model={"depth": 8, "width": 256, "activation": "relu"},
    ),
)

TASKS.add(
    "cifar10_cnn",
    Task(
        name="cifar10_cnn",
        description="CIFAR-10, 9-conv plain CNN (16/32/64 ch, Kaiming init, no norm/skips), SGD+momentum lr 0.1",
        dataset="cifar10",
        model_family="cnn",
        loss="cross_entropy",
        metric="accuracy",
        higher_is_better=True,
        target=0.35,
        chance=0.1,
        optimizer={**SGD_MOMENTUM, "lr": 0.1},
        batch_size=128,
        max_steps=300,
        eval_every=50,
        num_outputs=10,
        model={"depth": 9, "width": 16, "activation": "relu", "init": "kaiming"},
        # 2000 validation images resolve an accuracy near the target to +-1.1 points (one
        # standard error) at 2/5 of the 5000's cost (benchmarks/eval_cost.py); test: all 10000
        data={"val_size": 2000},
        augment=True,
        eval_batch_size=200,
        cpu_ms_per_step=220,
    ),
)  # 1.6x faster evaluation than 1000 on 2 cores (benchmarks/README.md)

TASKS.add(
    "adding_rnn",
    Task(
        name="adding_rnn",
        description="Adding problem T=50, tanh RNN (128 units, recurrent weights orthogonal x1.5), SGD+momentum lr 0.02",
        # the variance of the test targets: the MSE of the best constant predictor, their mean
        dataset="adding",
        model_family="rnn",
        loss="mse",
        metric="mse",
        higher_is_better=False,
        target=0.05,
        chance=0.1696,
        optimizer={**SGD_MOMENTUM, "lr": 0.02},
        batch_size=64,
        # LSTM + Adam at lr 2.8e-3 reaches test MSE 0.0006-0.0035 by step 1500 on 5 of 5
        # seeds, having sat at the constant predictor's 0.17 for 400-1100 steps
        max_steps=1500,
        eval_every=250,
        num_outputs=1,
        cpu_ms_per_step=13,
        model={"cell": "rnn", "hidden": 128, "activation": "tanh", "recurrent_gain": 1.5},
        data={"seq_len": 50},
    ),
)

TASKS.add(
    "recall_transformer",
    Task(
        name="recall_transformer",
        description="Associative recall (8 key-value pairs, then a key: name its value), 2-layer pre-LN "
        "Transformer (width 64, 4 heads), Adam lr 5e-3 without warmup: attention logits grow, nothing is learned",
        dataset="recall",
        model_family="transformer",
        loss="cross_entropy",
        metric="accuracy",
        higher_is_better=True,
        target=0.9,
        # the share of the test set's most common value: the accuracy of the best constant guess
        chance=0.07,
        # Adam without decay or warmup, at 5x its usual 1e-3: the largest attention logit grows
        # from 2 to 50-90 and the model stays at 16-18% (README's calibration table);
        # QK-LayerNorm keeps it under 10 and solves the task; at half the lr the baseline does too
        optimizer={"name": "adam", "lr": 5e-3},
        # SGD with momentum 0.9 learned the task at 0.03 (seed 0, 1000 steps: test accuracy 1.0),
        # not at 0.1 or 0.3 (0.21, 0.14), and diverged at 1.0; so the SGD family's grid centres on it
        sgd_lr=0.03,
        batch_size=64,
        # Learning shows as a sharp jump (0.2 to 1.0 within about 100 steps) whose step depends
        # on the lr: under configs/discriminate.yaml's sweep the fastest arms jump at 300-400
        # steps at their best rate, and at 1000 steps 20 of 23 arms had jumped, so the task
        # told only a broken model apart. 700 steps (about twice the fastest) separates the
        # arms that learn it at a fast, stable rate from the slow ones.
        max_steps=700,
        eval_every=100,
        num_outputs=16,
        cpu_ms_per_step=20,
        model={"depth": 2, "width": 64, "heads": 4},
    ),
)

TASKS.add(
    "fortunes_gpt",
    Task(
        name="fortunes_gpt",
        description="Next-byte prediction on real English text (Debian's fortunes, 2.5 MB), a 3-layer pre-LN GPT "
        "(width 64, 4 heads, context 64, 2,048 bytes a step), AdamW (0.9, 0.95) without warmup or decay",
        dataset="fortunes",
        model_family="transformer",
        loss="cross_entropy",
        metric="bits_per_byte",
        higher_is_better=False,
        # configs/lm_calibration.yaml (seed 0, AdamW 1e-3 to 4.8e-2): baseline's test bits per
        # byte fall from 3.28 to 2.84 at 1.2e-2 and rise to 2.90 at 2.4e-2, its largest
        # attention logit growing from 16 to 325 (QK-norm's: 8 to 17); at 4.8e-2 the logit
        # grows without bound (51,000) and the model stalls at 4.18, where QK-norm reaches 3.12.
        # The target is about baseline's best: an arm reaches it only at a well-tuned rate.
        target=2.85,
        # the training bytes' unigram entropy: a model that learned byte frequencies and no context
        chance=4.78,
        # the middle of the calibration's range; a protocol suite tunes on its own absolute grid
        optimizer={"name": "adamw", "lr": 3e-3, "betas": [0.9, 0.95], "weight_decay": 0.0},
        sgd_lr=0.3,
        batch_size=32,
        # one pass over the 2.2 MB of training text
        max_steps=1000,
        eval_every=100,
        num_outputs=256,
        cpu_ms_per_step=55,
        eval_batch_size=250,
        model={"depth": 3, "width": 64, "heads": 4, "output": "sequence"},
        data={"context": 64},
    ),
)
