"""The prediction loop: chips read in a background thread, run in batches, stitched block by block, rows written.

:class:`ChipLoop` holds what one scene's prediction shares (the open scene,
model, runner, writer, timings); :meth:`ChipLoop.run_block` predicts the
chips that reach one vertical block and stitches its columns; finished rows
go to the writer as soon as no chip can touch them. Chips that reach past the
scene's edge are read with the scene mirrored there (``pad="reflect"``), so
the model never sees zeros beyond the scene.
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.grid import Chip, Grid, north_up_flips
from geoseg.core.options import Progress
from geoseg.core.threads import Serial, prefetch, read_workers, run_ahead, stitch_threads
from geoseg.inference.backends import RING_BATCHES, Runner
from geoseg.inference.batches import Batch, BatchRing, normalize_chip, read_batches
from geoseg.inference.checks import DOMAIN_STEP, DomainCheck, Radiometry
from geoseg.inference.chips import ChipSelection
from geoseg.inference.device_rows import mask_rows, reduce_rows
from geoseg.inference.stitch import Stitcher, TorchStitcher
from geoseg.io.classmap import RASTER_OUTPUTS, TILE, ClassMapWriter
from geoseg.io.raster import open_scene, read_window, scene_has_mask

__all__ = ["ChipLoop", "PredictResult", "stitch_bands"]


@dataclass
class PredictResult:
    """What :func:`geoseg.predict` wrote and how long each part took (seconds; the times of stages run in threads,
    ``seconds["stitch"]`` and ``["write"]``, are summed over the threads: they can exceed the wall time)."""

    outputs: dict[str, Path]
    chips_total: int
    chips_predicted: int
    chips_skipped: int
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class ChipLoop:
    """Predicts and stitches one scene's chips, block by block, into a :class:`ClassMapWriter`.

    ``offset`` is the scene column of the writer's first column; ``total`` the
    number of chips reported to ``progress``; ``exclude(window)``, when
    given, returns the pixels of a scene window that become nodata in every
    output (True = excluded), such as a cloud mask. With ``mask_pixels``
    False only pixels no chip reached are nodata: the scene's nodata, the
    area of interest and ``exclude`` are applied later, on another grid.

    Example:
        >>> loop = ChipLoop(ds, "scene.tif", grid, [1, 2, 3], net, runner, writer, None, 2, None, result)  # doctest: +SKIP
        >>> loop.run(ChipSelection(grid, 0, ds.width), [(0, ds.width)])  # doctest: +SKIP
    """

    def __init__(
        self,
        ds: Any,
        image: str | os.PathLike[str],
        grid: Grid,
        indexes: list[int],
        net: Any,
        runner: Runner,
        writer: ClassMapWriter,
        polygons: list[Any] | None,
        batch_size: int,
        progress: Progress | None,
        result: PredictResult,
        total: int = 0,
        exclude: Callable[[Any], np.ndarray] | None = None,
        mask_pixels: bool = True,
    ) -> None:
        self.ds, self.image, self.grid, self.indexes = ds, image, grid, indexes
        self.exclude = exclude  # exclude(window) -> bool rows, True where outputs must be nodata (e.g. clouds)
        self.mask_pixels = mask_pixels  # False: only pixels no chip reached are nodata (masked later, on another grid)
        self.net, self.runner, self.writer, self.polygons = net, runner, writer, polygons
        self.gpu = str(getattr(runner, "device", "cpu")) != "cpu"  # readers and stitchers: the usable cores, also on Dask
        self.batch_size, self.progress, self.result, self.total = batch_size, progress, result, total
        self.masked = scene_has_mask(ds)
        self.flips = north_up_flips(ds.transform)  # a south-up (or east-to-west) scene's chips are shown north up
        self.float_scene = np.dtype(ds.dtypes[0]).kind == "f"
        self.radiometry = Radiometry(net.card, result.warnings, ds.name)
        self.domain = DomainCheck(net.card, result.warnings, ds.name)
        self.times = {"read_wait": 0.0, "model": 0.0, "stitch": 0.0, "write": 0.0}
        self.rows_out: Serial | None = None
        self.lock = threading.Lock()
        self.done = 0

    def run(self, chips: ChipSelection, blocks: list[tuple[int, int]]) -> None:
        """Predict the selected ``chips`` over the scene column ranges ``blocks`` (written from the first block's left edge)."""
        if self.progress:
            self.progress("predict", 0, self.total)
        offset = blocks[0][0]
        self.rows_out = rows_out = Serial("geoseg-writer")  # compressing and writing tiles overlaps the next chips
        try:
            for x0, x1 in blocks:
                self.run_block(x0, x1, chips.chips(x0, x1), offset, chips.columns(x0, x1))
        except BaseException:
            rows_out.close(raise_error=False)
            raise
        t = time.perf_counter()
        rows_out.close()  # every row is in the writer (its error raised, if any) before the outputs are committed
        self.times["write_wait"] = time.perf_counter() - t
        self.radiometry.check()
        self.domain.check()
        self.times["stitch"] -= self.times["write"]
        self.result.seconds.update(self.times)

    def run_block(self, x0: int, x1: int, chips: Iterator[Chip], offset: int, columns: list[int] | None = None) -> None:
        """Predict the chips that reach columns ``[x0, x1)`` and stitch those columns; ``columns``: the grid columns
        the chips lie in (the reader threads share them out; default: every column reaching the block)."""
        first = next(chips, None)
        if first is None:
            k = self.net.card.num_classes
            rows = {kind: RASTER_OUTPUTS[kind].empty(k, self.ds.height, x1 - x0) for kind in self.writer.ds}
            self._submit(x0 - offset, 0, rows)
            return
        parts: list[_Part] = []
        try:
            self._make_parts(parts, x0, x1, offset)
            cols = columns or self.grid.columns_in(x0, x1)
            pinned = bool(getattr(self.runner, "pinned", False))  # a GPU copies page-locked chips without staging
            lanes = max(1, int(getattr(self.runner, "lanes", 1)))  # model calls at once (onnxruntime on the CPU: 2)
            ring = BatchRing(RING_BATCHES + lanes - 1, self.batch_size, len(self.indexes), self.grid.chip_size, pinned)
            batches = read_batches(
                itertools.chain([first], chips),
                functools.partial(open_scene, self.image),
                self._read,
                self._prepare,
                ring,
                workers=read_workers(self.gpu),
                columns=range(min(cols), max(cols) + 1),
            )
            results = self._modelled(self._timed(prefetch(batches, depth=2)), lanes)
            try:
                for batch, probs in results:
                    self._predicted(batch, probs, parts)
            finally:
                results.close()  # waits for model calls still running: they read the ring's arrays
            for part in parts:
                self._stitch(part, part.stitcher.finish)
        finally:
            self._close(parts)

    def _make_parts(self, parts: list[_Part], x0: int, x1: int, offset: int) -> None:
        """The stitchers of the block, added to ``parts`` one by one (so those made are closed if one fails)."""
        k = self.net.card.num_classes
        if getattr(self.runner, "device_stitch", False):  # a GPU: probabilities stay there, only uint8 rows come back
            sink = functools.partial(self.write_rows, x0, x1, offset)
            parts.append(_Part(TorchStitcher(self.grid, x0, x1, k, sink, device=self.runner.device)))
            return
        bands = stitch_bands(x0, x1, self.grid.chip_size, stitch_threads(self.gpu))
        for i, (a, b) in enumerate(bands):  # on the CPU: a thread per band
            stitcher = Stitcher(self.grid, a, b, k, functools.partial(self.write_rows, a, b, offset))
            parts.append(_Part(stitcher, Serial(f"geoseg-stitch{i}", depth=1), frozenset(self.grid.columns_in(a, b))))

    def _close(self, parts: list[_Part]) -> None:
        """Wait for every band's thread (each, also when one fails); raise the first error unless one is in flight."""
        t = time.perf_counter()
        error: BaseException | None = None
        for part in parts:
            if part.thread is not None:
                try:
                    part.thread.close(raise_error=sys.exc_info()[0] is None and error is None)
                except BaseException as exc:  # noqa: BLE001 - the others are still joined, then it is raised
                    error = error or exc
        self.times["stitch_wait"] = self.times.get("stitch_wait", 0.0) + time.perf_counter() - t
        if error is not None and sys.exc_info()[0] is None:
            raise error

    def _stitch(self, part: _Part, fn: Callable[..., None], *args: Any) -> None:
        """Run a stitcher call in its band's thread (in order), or here; its time counts as stitching."""

        def timed() -> None:
            t = time.perf_counter()
            fn(*args)
            with self.lock:
                self.times["stitch"] += time.perf_counter() - t

        if part.thread is None:
            timed()
        else:
            part.thread.submit(timed)

    def _read(self, reader: Any, chip: Chip, out: np.ndarray) -> np.ndarray:
        """Read a chip's bands into ``out``; past the scene's edge the scene is mirrored (never zeros). Its validity."""
        return read_window(reader, chip.window, self.indexes, out=out, masked=self.masked, pad="reflect")[1]

    def _prepare(self, chip: Chip, data: np.ndarray, valid: np.ndarray) -> None:
        """Observe a chip's raw values (in chip order), then normalize it in place; invalid pixels become 0."""
        rows, cols = chip.inside  # mirrored pixels would count twice in the band statistics
        self.radiometry.observe(data[:, rows, cols], valid[rows, cols])
        self.domain.observe(data[:, rows, cols], valid[rows, cols])
        normalized = normalize_chip(data, valid, self.net.normalize)
        if normalized is not data:  # a normalization that is not in place: into the batch's slot
            data[...] = normalized

    def _timed(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        """Yield batches, counting the time spent waiting for the reader."""
        while True:
            t = time.perf_counter()
            batch = next(batches, None)
            self.times["read_wait"] += time.perf_counter() - t
            if batch is None:
                return
            yield batch

    def _modelled(self, batches: Iterator[Batch], lanes: int) -> Generator[tuple[Batch, Any], None, None]:
        """Batches with their probabilities (None for a batch of skipped chips), in order, ``lanes`` model calls at
        once; the time this thread waits for the model (not for the reader) counts as the model's."""
        results = run_ahead(batches, self._run_model, lanes, "geoseg-model")
        try:
            while True:
                t, read_wait = time.perf_counter(), self.times["read_wait"]
                item = next(results, None)
                self.times["model"] += time.perf_counter() - t - (self.times["read_wait"] - read_wait)
                if item is None:
                    return
                yield item
        finally:
            results.close()

    def _run_model(self, batch: Batch) -> Any:
        """The probabilities of a batch's chips, on the file's grid (None when every chip was skipped)."""
        if not batch.chips:
            return None
        if self.flips:
            batch.data[...] = np.flip(batch.data, self.flips)
        probs = self.runner(batch.data)
        if self.flips:  # back onto the file's grid
            probs = np.flip(probs, self.flips) if isinstance(probs, np.ndarray) else probs.flip(self.flips)
        return probs

    def _predicted(self, batch: Batch, probs: Any, parts: list[_Part]) -> None:
        """Hand a batch's probabilities to the stitchers of the bands its chips lie in; count it as done."""
        if batch.chips:
            for part in parts:
                if part.thread is not None and part.thread.error is not None:  # a band failed: stop now, not later
                    raise part.thread.error
                mine = [(c, probs[i]) for i, c in enumerate(batch.chips) if part.columns is None or c.col in part.columns]
                if mine:
                    self._stitch(part, _add_all, part.stitcher, mine)
        self.result.chips_predicted += len(batch.chips)
        self.result.chips_skipped += batch.skipped
        self.done += len(batch.chips) + batch.skipped
        if self.progress:
            self.progress("predict", self.done, self.total)

    def _submit(self, x: int, y: int, rows: dict[str, np.ndarray]) -> None:
        """Hand rows to the writer thread (the writer's own order check still applies)."""
        if self.rows_out is None:
            raise RuntimeError("rows written outside ChipLoop.run")
        self.rows_out.submit(self.writer.write_rows, x, y, rows)

    def write_rows(self, x0: int, x1: int, offset: int, y0: int, y1: int, probs: np.ndarray, weight: np.ndarray) -> None:
        """The stitcher's sink: finished rows ``[y0, y1)`` of columns ``[x0, x1)`` become output rows."""
        from rasterio.features import geometry_mask
        from rasterio.windows import Window
        from rasterio.windows import transform as window_transform

        t = time.perf_counter()
        window = Window(x0, y0, x1 - x0, y1 - y0)
        on_device = not isinstance(probs, np.ndarray)
        if on_device:
            valid, arrays, sample = reduce_rows(probs, weight, self.writer.ds)
        else:
            valid = weight > 0
        with self.lock:  # bands of columns are stitched in threads: the scene's handle and the checks are shared
            if self.mask_pixels and (self.masked or self.float_scene):
                valid &= read_window(self.ds, window, self.indexes, masked=self.masked)[1]
            if self.mask_pixels and self.polygons is not None:
                shape = (y1 - y0, x1 - x0)
                valid &= geometry_mask(
                    self.polygons, shape, window_transform(window, self.ds.transform), invert=True, all_touched=False
                )
            if self.exclude is not None:
                valid &= ~self.exclude(window)
            if on_device:
                self.domain.rows(sample, valid[::DOMAIN_STEP, ::DOMAIN_STEP], step=1)
            else:
                self.domain.rows(probs, valid)
        if on_device:
            arrays = mask_rows(arrays, valid)
        else:
            arrays = {kind: RASTER_OUTPUTS[kind].compute(probs, valid) for kind in self.writer.ds}
        self._submit(x0 - offset, y0, arrays)
        with self.lock:
            self.times["write"] += time.perf_counter() - t


@dataclass
class _Part:
    """A band of columns' stitcher, the thread it runs in (None: in the caller's) and its grid columns (None: all)."""

    stitcher: Stitcher
    thread: Serial | None = None
    columns: frozenset[int] | None = None


def stitch_bands(x0: int, x1: int, chip_size: int, threads: int | None = None) -> list[tuple[int, int]]:
    """Columns ``[x0, x1)`` cut into at most ``threads`` bands of about 8 chips or more, cut on the 256-px tiles of
    the outputs (so no tile is written by two bands); ``threads`` defaults to
    :func:`~geoseg.core.threads.stitch_threads`.

    Example:
        >>> stitch_bands(0, 10000, 256, threads=2), stitch_bands(0, 3000, 256, threads=4), stitch_bands(0, 200, 8, 3)
        ([(0, 5120), (5120, 10000)], [(0, 3000)], [(0, 200)])
    """
    count = max(1, min(threads or stitch_threads(), (x1 - x0) // (8 * chip_size)))
    inner = {x0 + round((x1 - x0) * i / count / TILE) * TILE for i in range(1, count)}
    cuts = sorted({x0, x1, *(c for c in inner if x0 < c < x1)})
    return list(zip(cuts, cuts[1:]))


def _add_all(stitcher: Stitcher, chips: list[tuple[Chip, Any]]) -> None:
    for chip, p in chips:
        stitcher.add(chip, p)
