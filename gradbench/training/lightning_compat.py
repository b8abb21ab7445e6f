"""Every place gradbench relies on how Lightning works inside, rather than on its public API.

Each was checked on the Lightning version constraints.txt pins, and each has a test in
tests/test_lightning_compat.py that fails loudly when a Lightning release changes the
behaviour it relies on. Nothing here touches tensors: records do not depend on this module.

1. NullProfiler. Lightning calls every hook (about 45 a step, callbacks included) inside
   `trainer.profiler.profile(name)`. Its default, PassThroughProfiler, records nothing, but
   still builds, enters and leaves a generator-based context manager on each call; this one
   hands back one shared null context instead.
2. LeanSetattr. Lightning sets `LightningModule._current_fx_name` around every hook call
   (dozens of times a step); it is not a parameter, buffer or submodule, so it can skip
   nn.Module.__setattr__'s bookkeeping (type checks against three registries).
3. precomputed_signature. Lightning reads training_step's signature on every step
   (`inspect.getfullargspec`, to see whether it takes batch_idx); inspect returns a
   function's `__signature__` as it is, so precomputing it makes that an attribute read.
4. Interrupts. Lightning catches KeyboardInterrupt inside trainer.fit/validate/test
   (trainer/call.py, `_call_and_handle_interrupt`): it tears the trainer down and calls
   sys.exit(1); on SIGTERM its loops raise SIGTERMException, a SystemExit with code 0.
   execution/interrupts.py turns a SystemExit that follows one of its signals back into an
   interrupt.
5. Hook order (StabilityMonitor, BenchModule): after backward (and AMP's unscale),
   Callback.on_before_optimizer_step, then LightningModule.configure_gradient_clipping,
   then the optimizer step (whose post-hook gives the post-clip norm), once per optimizer
   step. This is documented Lightning behaviour, tested here all the same.
6. batches_that_stepped. `trainer.global_step` counts optimizer steps, so a manual-
   optimization module with two optimizers advances it twice per batch; the training-step
   count loggers use is the epoch loop's `_batches_that_stepped` (one per batch that
   stepped, restored from a checkpoint), which the standalone StabilityMonitor keys its rows on.

What the first three save together is the harness's floor row (benchmarks/README.md).
"""

from __future__ import annotations

import contextlib
import inspect

from lightning.pytorch.profilers import PassThroughProfiler

# the attribute Lightning sets around every hook call (item 2)
HOOK_NAME_ATTRIBUTE = "_current_fx_name"

# what Lightning turns Ctrl-C and SIGTERM into inside fit/validate/test (item 4)
SIGNAL_EXITS: tuple[type[BaseException], ...] = (SystemExit,)


class NullProfiler(PassThroughProfiler):
    _NULL = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.AbstractContextManager:
        return self._NULL


class LeanSetattr:
    """Mixin for a LightningModule: the names in `_plain_attributes` (Lightning's per-hook
    name, and whatever the subclass adds) are set as plain attributes."""

    _plain_attributes = frozenset({HOOK_NAME_ATTRIBUTE})

    def __setattr__(self, name, value):
        if name in self._plain_attributes:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


def precomputed_signature(fn):
    """Decorator: store fn's signature on it, so Lightning's per-step look-up is a read."""
    fn.__signature__ = inspect.signature(fn)
    return fn


def batches_that_stepped(trainer) -> int:
    """The training steps done so far: batches whose optimizer(s) stepped (item 6)."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped
