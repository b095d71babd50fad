"""How the loop looks at losses without a host-device sync per update: a window of per-update
losses kept on the device and read once every `trainer.sync_every` updates (`LossWindow`), and,
with `trainer.sync_debug` on CUDA, an error for any other sync in between (`SyncDebug`)."""

from __future__ import annotations

import math

import torch

from sweep.train.distributed import ONE_PROCESS, Ranks


class SyncDebug:
    """With `trainer.sync_debug` on CUDA: any host-device sync between the loop's sync points is an
    error (torch.cuda.set_sync_debug_mode), so a hidden `.item()` shows up at once."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def arm(self) -> None:
        if self.on:
            torch.cuda.set_sync_debug_mode("error")

    def disarm(self) -> None:
        if self.on:
            torch.cuda.set_sync_debug_mode("default")


class LossWindow:
    """Per-update losses on the device since the host last looked; `flush()` is the one sync."""

    def __init__(self, size: int, device: torch.device, ranks: Ranks = ONE_PROCESS) -> None:
        self.ranks = ranks  # several processes: each flush sums the window over them (sweep.train.distributed)
        self.values = torch.zeros(size, device=device)
        self.size, self.count, self.first = size, 0, 0
        self.total, self.updates = 0.0, 0  # finite losses seen by the host this epoch

    def add(self, loss: torch.Tensor) -> bool:
        """Keep `loss`; True when the window is full and the host should look."""
        self.values[self.count] = loss.detach()
        self.count += 1
        return self.count == self.size

    def flush(self) -> tuple[int, float] | None:
        """Read the window; (index in it, value) of its first non-finite loss, else None."""
        values = self.ranks.sum_losses(self.values[: self.count]) if self.count else []
        for i, v in enumerate(values):
            if not math.isfinite(v):
                return i, v
        self.total += sum(values)
        self.updates += len(values)
        self.first += self.count
        self.count = 0
        return None
