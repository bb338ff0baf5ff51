"""Chips read, checked and normalized into batches for the model.

:func:`read_batches` is the prediction loop's reader: a small pool of
threads (GDAL releases the GIL while it reads and decompresses), each with
its own handle on the scene, reads the chips' windows straight into
preallocated batch arrays (:class:`BatchRing`); the chips are then observed,
normalized and grouped in order, so results do not depend on which thread
read what. :func:`iter_batches` is the same batching for one reader.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from geoseg.core.grid import Chip
from geoseg.core.threads import read_workers

__all__ = ["Batch", "BatchRing", "iter_batches", "normalize_chip", "read_batches"]


@dataclass
class Batch:
    """Chips ready for the model: normalized data ``(B, C, S, S)`` and validity ``(B, S, S)``."""

    chips: list[Chip]
    data: np.ndarray
    valid: np.ndarray
    skipped: int = 0


def iter_batches(
    chips: Iterable[Chip],
    read: Callable[[Chip], tuple[np.ndarray, np.ndarray]],
    normalize: Callable[[np.ndarray], np.ndarray],
    batch_size: int,
) -> Iterator[Batch]:
    """Read chips, drop those with no valid pixel, normalize, and group them in batches.

    Invalid pixels are set to 0 after normalization (the band mean when the
    model has a normalization). A batch may be empty of chips when all were
    skipped; its ``skipped`` count still reports progress.

    Example:
        >>> from geoseg.core.grid import make_grid
        >>> read = lambda chip: (np.ones((1, 8, 8), np.float32), np.ones((8, 8), bool))
        >>> [len(b.chips) for b in iter_batches(make_grid(24, 8, 8, 0), read, lambda a: a, 2)]
        [2, 1]
    """
    pending: list[tuple[Chip, np.ndarray, np.ndarray]] = []
    skipped = 0
    for chip in chips:
        data, valid = read(chip)
        if not valid.any():
            skipped += 1
        else:
            pending.append((chip, normalize_chip(data, valid, normalize), valid))
        if len(pending) == batch_size or (skipped and skipped % batch_size == 0 and not pending):
            yield _stack(pending, skipped)
            pending, skipped = [], 0
    if pending or skipped:
        yield _stack(pending, skipped)


def normalize_chip(data: np.ndarray, valid: np.ndarray, normalize: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """A chip's bands ``(C, H, W)`` normalized, in place where ``normalize`` works in place; invalid pixels 0 after
    normalization (the band mean, when the model has a normalization).

    Example:
        >>> normalize_chip(np.full((1, 1, 2), 5.0), np.array([[True, False]]), lambda a: a - 1).tolist()
        [[[4.0, 0.0]]]
    """
    normalized = normalize(data)
    if not valid.all():
        normalized[:, ~valid] = 0
    return normalized


def _stack(items: list[tuple[Chip, np.ndarray, np.ndarray]], skipped: int) -> Batch:
    if not items:
        return Batch([], np.empty((0,)), np.empty((0,)), skipped)
    return Batch(
        [c for c, _, _ in items],
        np.stack([d for _, d, _ in items]),
        np.stack([v for _, _, v in items]),
        skipped,
    )


class BatchRing:
    """``slots`` preallocated batch arrays handed out in turn (no allocation per batch or chip).

    With ``pinned`` the chips lie in page-locked memory (torch's), which a GPU
    copies from without a blocking staging copy.

    A slot may be filled again ``slots`` batches later: the ring must be
    longer than the batches alive at once (being read, queued, in the model).

    Example:
        >>> ring = BatchRing(3, batch_size=2, bands=4, chip_size=8)
        >>> data, valid = ring.next()
        >>> data.shape, valid.shape, ring.next()[0] is data, ring.next()[0] is data, ring.next()[0] is data
        ((2, 4, 8, 8), (2, 8, 8), False, False, True)
    """

    def __init__(self, slots: int, batch_size: int, bands: int, chip_size: int, pinned: bool = False) -> None:
        shape = (batch_size, bands, chip_size, chip_size)
        self.slots = [(_empty(shape, pinned), np.empty((batch_size, chip_size, chip_size), bool)) for _ in range(slots)]
        self.turn = itertools.cycle(range(slots))

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """The next slot's data ``(B, C, S, S)`` and validity ``(B, S, S)``."""
        return self.slots[next(self.turn)]


def _empty(shape: tuple[int, ...], pinned: bool) -> np.ndarray:
    if not pinned:
        return np.empty(shape, np.float32)
    import torch

    return torch.empty(shape, dtype=torch.float32, pin_memory=True).numpy()


class _Handles:
    """One open scene per reading thread (GDAL datasets are not shared between threads), all closed at the end."""

    def __init__(self, opener: Callable[[], Any]) -> None:
        self.opener, self.local, self.lock = opener, threading.local(), threading.Lock()
        self.open: list[Any] = []

    def get(self) -> Any:
        ds = getattr(self.local, "ds", None)
        if ds is None:
            ds = self.local.ds = self.opener()
            with self.lock:
                self.open.append(ds)
        return ds

    def close(self) -> None:
        for ds in self.open:
            ds.close()


def read_batches(
    chips: Iterable[Chip],
    opener: Callable[[], Any],
    read_into: Callable[[Any, Chip, np.ndarray], np.ndarray],
    prepare: Callable[[Chip, np.ndarray, np.ndarray], None],
    ring: BatchRing,
    workers: int | None = None,
    ahead: int = 1,
    columns: range | None = None,
) -> Iterator[Batch]:
    """Batches of chips read by ``workers`` threads (default :func:`~geoseg.core.threads.read_workers`) into
    ``ring``'s slots, ``ahead`` batches in advance.

    ``read_into(ds, chip, out)`` reads a chip's bands into ``out`` ``(C, S, S)``
    with a dataset from ``opener`` (one per thread) and returns its validity.
    Each thread reads its own band of ``columns`` (the grid column indexes
    the chips run over): neighbouring chips share tiles of the file, and a
    thread's dataset keeps the tiles it decoded (GDAL's block cache is per
    dataset), so each tile is decoded about once instead of once per thread
    (with chips dealt in turn, 2 threads took 1.5x the CPU time of one);
    without ``columns`` chips are dealt in turn.
    ``prepare(chip, data, valid)`` then runs in this thread, in chip order,
    on chips with a valid pixel (observe the raw values, normalize in place).
    Chips without one are skipped and counted. The ring needs ``ahead`` + 4
    slots when batches are consumed through :func:`~geoseg.core.threads.prefetch`
    with depth 2, and one more for each model call beyond the first that runs
    at once (:func:`~geoseg.core.threads.run_ahead`).

    Example:
        >>> batches = read_batches(grid, lambda: open_scene(path), read_into, prepare, BatchRing(5, 8, 3, 256))  # doctest: +SKIP
    """
    handles = _Handles(opener)
    size = ring.slots[0][0].shape[0]
    workers = read_workers() if workers is None else max(1, workers)
    lanes = [ThreadPoolExecutor(1, thread_name_prefix=f"geoseg-read{i}") for i in range(workers)]
    turn = itertools.count()

    def lane(chip: Chip) -> ThreadPoolExecutor:
        if not columns:
            return lanes[next(turn) % workers]
        return lanes[min(workers - 1, max(0, chip.col - columns.start) * workers // len(columns))]

    queued: deque[tuple[list[Chip], list[Future], np.ndarray, np.ndarray]] = deque()
    chips = iter(chips)
    try:
        while True:
            group = list(itertools.islice(chips, size))
            if group:
                data, valid = ring.next()
                futures = [lane(c).submit(_read_chip, read_into, handles, c, data[i]) for i, c in enumerate(group)]
                queued.append((group, futures, data, valid))
            if queued and (len(queued) > ahead or not group):
                yield _assemble(*queued.popleft(), prepare)
            elif not group:
                return
    finally:
        for pool in lanes:
            pool.shutdown(wait=True, cancel_futures=True)
        handles.close()


def _read_chip(read_into: Callable[[Any, Chip, np.ndarray], np.ndarray], handles: _Handles, chip: Chip, out: np.ndarray) -> Any:
    """Read one chip with this thread's dataset."""
    return read_into(handles.get(), chip, out)


def _assemble(group: list[Chip], futures: list[Future], data: np.ndarray, valid: np.ndarray, prepare: Callable) -> Batch:
    """Wait for a group's reads (in order), prepare its chips with a valid pixel and keep those."""
    keep = []
    for i, (chip, future) in enumerate(zip(group, futures)):
        valid[i] = future.result()
        if valid[i].any():
            prepare(chip, data[i], valid[i])
            keep.append(i)
    n = len(group)
    if len(keep) == n:
        return Batch(group, data[:n], valid[:n])
    return Batch([group[i] for i in keep], data[keep], valid[keep], n - len(keep))
