"""Many runs: the suite driver (resume, progress, the single writer), executors (in process,
local workers, Ray), multi-device runs, interrupts, W&B tracking and verify."""
