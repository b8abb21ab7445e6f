"""The Trainer's profiler: one that costs nothing per hook.

Lightning calls every hook (about 45 a step, callbacks included) inside
`trainer.profiler.profile(name)`. Its default, PassThroughProfiler, records nothing, but it
still builds, enters and leaves a generator-based context manager on each call. This
profiler hands back one shared null context instead. It never touches tensors, so records
are unchanged. What it and BenchModule.transfer_batch_to_device save together is the
harness's floor row (benchmarks/README.md).
"""

from __future__ import annotations

import contextlib

from lightning.pytorch.profilers import PassThroughProfiler


class NullProfiler(PassThroughProfiler):
    _NULL = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.AbstractContextManager:
        return self._NULL
