"""A user's DDP run for tests/test_own_loop.py: `python -m own_loop_ddp OUT WORLD`, under
torchrun for WORLD 2 (gloo, 16 samples a rank) or plainly for WORLD 1 (32 samples), writes
the StabilityMonitor's per-step loss and norms with an AutoClip acting (rank 0 writes; the
ranks' series are compared first)."""

from __future__ import annotations

import json
import os
import sys

import lightning.pytorch as L
import torch
from user_models import Regression, regression_set

from gradbench.callbacks import AutoClip, StabilityMonitor


def main(out: str, world: int) -> None:
    torch.manual_seed(0)
    data = regression_set(384)
    # the samples dealt out in order (Lightning's own sampler would shuffle), so the two ranks'
    # batches of 16 together are the single process's batch of 32
    rank = int(os.environ.get("RANK", 0))
    sampler = torch.utils.data.DistributedSampler(data, num_replicas=world, rank=rank, shuffle=False)
    loader = torch.utils.data.DataLoader(data, batch_size=32 // world, sampler=sampler)
    monitor = StabilityMonitor()
    trainer = L.Trainer(
        max_steps=12,
        accelerator="cpu",
        devices=world,
        strategy="ddp" if world > 1 else "auto",
        callbacks=[monitor, AutoClip(percentile=25.0)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    trainer.fit(Regression(), loader)
    series = monitor.series()
    mine = torch.tensor(series, dtype=torch.float64)
    agree = True
    if world > 1:
        gathered = [torch.empty_like(mine) for _ in range(world)]
        torch.distributed.all_gather(gathered, mine)
        agree = all(torch.equal(gathered[0], other) for other in gathered[1:])
    if trainer.is_global_zero:
        with open(out, "w") as fh:
            json.dump(
                {
                    "loss": series[:, 0].tolist(),
                    "pre": series[:, 1].tolist(),
                    "post": series[:, 2].tolist(),
                    "ranks_agree": agree,
                },
                fh,
            )
    if world > 1:  # leave the process group before exit: gloo aborts a process that still holds one
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
