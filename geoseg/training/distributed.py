"""Training on several processes under ``torchrun``: the process group, DistributedDataParallel, summed metrics.

Outside torchrun (``WORLD_SIZE`` unset or 1) everything here is a no-op: one
process of rank 0, samples and values passed through unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from geoseg.core.limits import usable_cores

__all__ = ["Dist", "distributed", "process_device", "process_threads", "wrap_model"]

log = logging.getLogger("geoseg")
T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 when not under torchrun).

    Example:
        >>> Dist().main, Dist().share([1, 2, 3]), Dist().reduce([1, 2]).tolist()
        (True, [1, 2, 3], [1.0, 2.0])
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes the run (rank 0)."""
        return self.rank == 0

    def reduce(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """Sum ``values`` over all processes (float64)."""
        array = np.asarray(values, dtype=np.float64)
        if self.world == 1:
            return array
        import torch
        import torch.distributed as dist

        tensor = torch.from_numpy(array.copy())
        if dist.get_backend() == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor)
        return tensor.cpu().numpy()

    def share(self, samples: list[T]) -> list[T]:
        """This process's part of an epoch's samples (torch's DistributedSampler: padded so all take as many steps)."""
        if self.world == 1:
            return samples
        from torch.utils.data import DistributedSampler

        sampler: DistributedSampler[int] = DistributedSampler(
            range(len(samples)),  # type: ignore[arg-type]  # any sized sequence will do
            num_replicas=self.world,
            rank=self.rank,
            shuffle=False,
        )
        return [samples[i] for i in sampler]

    def barrier(self) -> None:
        """Wait until every process gets here (nothing to wait for in a single process)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


@contextlib.contextmanager
def distributed(device: str) -> Iterator[Dist]:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE`` > 1): gloo on CPU, nccl on CUDA.

    Example:
        >>> with distributed("cpu") as dist:  # not under torchrun: one process
        ...     dist.world
        1
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield Dist()
        return
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") and dist.is_nccl_available() else "gloo"  # no NCCL on Windows
    dist.init_process_group(backend=backend)
    info = Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if info.main:
        log.info("training on %d processes (torchrun, %s)", info.world, backend)
    else:
        log.setLevel(logging.WARNING)
    try:
        yield info
    finally:
        dist.destroy_process_group()


def process_device(device: str, dist: Dist) -> str:
    """The device of this process: ``cuda:LOCAL_RANK`` for CUDA under torchrun, else ``device``.

    Example:
        >>> process_device("cuda", Dist(1, 2, 1)), process_device("cpu", Dist(1, 2, 1))
        ('cuda:1', 'cpu')
    """
    if dist.world > 1 and device.startswith("cuda"):
        return f"cuda:{dist.local_rank}"
    return device


def process_threads(threads: int | None, dist: Dist, device: str) -> int | None:
    """Torch CPU threads for this process: as configured, or the usable cores shared between the processes on CPU.

    Example:
        >>> process_threads(4, Dist(0, 2), "cpu"), process_threads(None, Dist(), "cpu")
        (4, None)
    """
    if dist.world > 1 and not threads and device == "cpu":
        local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world))
        return max(1, usable_cores() // local)
    return threads


def wrap_model(net: Any, dist: Dist, device: str) -> Any:
    """What the training steps call: ``net`` itself, or under torchrun its DistributedDataParallel wrapper.

    Example:
        >>> wrap_model("net", Dist(), "cpu")
        'net'
    """
    if dist.world == 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    # static_graph: the same layers run every step, and encoders cut short (encoder_depth) leave some unused
    return DistributedDataParallel(net, device_ids=[dist.local_rank] if device.startswith("cuda") else None, static_graph=True)
