"""Stitching: blend overlapping chip probabilities into finished rows, streaming.

The :class:`Stitcher` keeps accumulators only for the rows that chips of the
current grid row cover (a ring of ``chip_size`` rows over one vertical block)
and hands rows to a sink as soon as no later chip can touch them. Memory is
independent of the scene's height.

Overlaps are blended with weights that taper only toward neighbouring chips:
on a side that borders another chip, the outer quarter of the overlap gets
weight 0 (so edge effects of the model's receptive field do not leak in), the
middle half ramps linearly, and the rest is 1; the ramps of two neighbours sum
to 1. Sides on the scene's border keep full weight, so every pixel of the
scene gets a positive total weight. A chip that reaches past the scene's edge
(a mirrored margin, see :func:`geoseg.core.grid.make_grid`) contributes only
its pixels inside the scene.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from geoseg.core.grid import Chip, Grid

__all__ = ["RowSink", "Stitcher", "TorchStitcher", "chip_weights", "ramp"]

EMIT_ROWS = 64
"""Finished rows are handed to the sink in pieces of at most this many rows (bounds the transient arrays)."""

RowSink = Callable[[int, int, np.ndarray, np.ndarray], None]
"""``sink(y0, y1, probs, weight)``: finished rows [y0, y1) of the block's columns (views, valid until it returns)."""


def ramp(length: int, overlap: int) -> np.ndarray:
    """Weights along ``length`` pixels, tapering toward index 0 over ``overlap`` pixels.

    Example:
        >>> print(np.array2string(ramp(8, 4), precision=2))
        [0.   0.33 0.67 1.   1.   1.   1.   1.  ]
    """
    weights = np.ones(length, dtype=np.float32)
    if overlap <= 0:
        return weights
    margin = overlap // 4
    span = overlap - 2 * margin
    t = np.arange(min(overlap, length), dtype=np.float32)
    w = np.clip((t - margin + 1) / (span + 1), 0.0, 1.0)
    w[: min(margin, length)] = 0.0
    weights[: len(w)] = w
    return weights


def _overlaps(offsets: tuple[int, ...], index: int, chip_size: int) -> tuple[int, int]:
    before = offsets[index - 1] + chip_size - offsets[index] if index > 0 else 0
    after = offsets[index] + chip_size - offsets[index + 1] if index + 1 < len(offsets) else 0
    return before, after


def _axis_weights(offsets: tuple[int, ...], index: int, chip_size: int) -> np.ndarray:
    """Weights of chip ``index`` along one axis over the whole chip: tapered toward each neighbour."""
    before, after = _overlaps(offsets, index, chip_size)
    return ramp(chip_size, before) * ramp(chip_size, after)[::-1]


def chip_weights(grid: Grid, chip: Chip) -> np.ndarray:
    """Blend weights of ``chip`` over its part inside the scene, shape ``(h, w)``.

    The ramps are laid over the whole chip and cut to :attr:`Chip.inside`, so a
    chip reaching past the scene keeps the weights of its inside pixels.

    Example:
        >>> from geoseg.core.grid import make_grid
        >>> g = make_grid(48, 32, 32, "16px")
        >>> print(np.array2string(chip_weights(g, g.chip(0, 0))[0, -10:], precision=2))
        [0.67 0.56 0.44 0.33 0.22 0.11 0.   0.   0.   0.  ]
    """
    wy = _axis_weights(grid.ys, chip.row, grid.chip_size)
    wx = _axis_weights(grid.xs, chip.col, grid.chip_size)
    rows, cols = chip.inside
    return np.outer(wy[rows], wx[cols])


@dataclass(frozen=True)
class _Span:
    """One grid row or column along its axis, in scene coordinates.

    ``start`` is the chip's first pixel inside the scene; ``weights`` its
    weights from there; ``touched`` where its weight is positive; ``own``
    where its weight is 1 and every other chip's is 0 (empty when lo >= hi):
    there the blend is the chip itself, copied instead of weighted and added;
    ``reach`` the furthest any earlier index touches: beyond it, this chip is
    the first to touch (its weighted values are written, not added to zeros).
    """

    start: int
    weights: np.ndarray
    touched: tuple[int, int]
    own: tuple[int, int]
    reach: int
    kind: tuple[int, int, int, int]
    """Spans of one kind (overlaps before and after, the part inside the scene) have the same weights."""


def _spans(offsets: tuple[int, ...], chip_size: int, extent: int) -> list[_Span]:
    """The :class:`_Span` of every grid index along an axis of ``extent`` pixels."""
    parts = []
    for i, offset in enumerate(offsets):
        lo, hi = max(0, -offset), min(chip_size, extent - offset)
        weights = _axis_weights(offsets, i, chip_size)[lo:hi]
        kind = (*_overlaps(offsets, i, chip_size), lo, hi)
        start = offset + lo
        positive, ones = np.flatnonzero(weights > 0), np.flatnonzero(weights == 1)
        touched = (start + int(positive[0]), start + int(positive[-1]) + 1) if positive.size else (start, start)
        full = (start + int(ones[0]), start + int(ones[-1]) + 1) if ones.size else (start, start)
        parts.append((start, weights, touched, full, kind))
    spans, reach = [], -(1 << 62)  # reach: the furthest any earlier chip touches
    after = [1 << 62] * (len(parts) + 1)  # after[i]: the nearest any later chip starts touching
    for i in range(len(parts) - 1, -1, -1):
        after[i] = min(after[i + 1], parts[i][2][0])
    for i, (start, weights, touched, full, kind) in enumerate(parts):
        own = (max(full[0], reach), min(full[1], after[i + 1]))
        spans.append(_Span(start, weights, touched, own if own[0] < own[1] else (full[0], full[0]), reach, kind))
        reach = max(reach, touched[1])
    return spans


class Stitcher:
    """Blend chip probabilities over the scene columns [x0, x1) and stream finished rows.

    Chips must be added in grid row-major order (skipping chips is fine).
    Rows with no chip get weight 0 (the sink turns them into nodata).

    Example:
        >>> from geoseg.core.grid import make_grid
        >>> grid = make_grid(40, 30, 16, "4px")
        >>> rows = []
        >>> st = Stitcher(grid, 0, 40, 2, lambda y0, y1, p, w: rows.append((y0, y1, p.shape)))
        >>> for chip in grid:
        ...     st.add(chip, np.full((2, 16, 16), 0.5, np.float32))
        >>> st.finish()
        >>> rows[0], rows[-1][1]
        ((0, 12, (2, 12, 40)), 30)
    """

    def __init__(self, grid: Grid, x0: int, x1: int, num_classes: int, sink: RowSink) -> None:
        cols = grid.columns_in(x0, x1)  # chip columns reaching the block: their extent, without making the chips
        self.grid = grid
        self.x0, self.x1 = x0, x1
        self.ex0 = min(max(grid.xs[c], 0) for c in cols)
        self.ex1 = max(min(grid.xs[c] + grid.chip_size, grid.width) for c in cols)
        self.height = min(grid.chip_size, grid.height)
        self.acc = self._zeros((num_classes, self.height, self.ex1 - self.ex0))
        self.wsum = self._zeros((self.height, self.ex1 - self.ex0))
        self.scratch = self._zeros((num_classes, grid.chip_size, grid.chip_size))
        self.y = 0  # first row not yet handed to the sink; ring row of y is y % height
        self.sink = sink
        self.xspans = _spans(grid.xs, grid.chip_size, grid.width)
        self.yspans = _spans(grid.ys, grid.chip_size, grid.height)
        self._weights: dict[tuple[tuple[int, ...], tuple[int, ...]], np.ndarray] = {}

    def _ring(self, y0: int, y1: int) -> list[tuple[slice, slice]]:
        """(ring rows, local rows) slice pairs for scene rows [y0, y1) (at most two pieces)."""
        start, n = y0 % self.height, y1 - y0
        first = min(n, self.height - start)
        pieces = [(slice(start, start + first), slice(0, first))]
        if first < n:
            pieces.append((slice(0, n - first), slice(first, n)))
        return pieces

    def _chip_weights(self, chip: Chip) -> np.ndarray:
        """The chip's weights inside the scene, made once per kind of chip (inner, edge, corner, ...)."""
        ys, xs = self.yspans[chip.row], self.xspans[chip.col]
        weights = self._weights.get((ys.kind, xs.kind))
        if weights is None:
            if len(self._weights) > 64:  # irregular grids (an area of interest's few chips) stay bounded
                self._weights.clear()
            weights = self._weights[(ys.kind, xs.kind)] = self._array(np.outer(ys.weights, xs.weights))
        return weights

    def add(self, chip: Chip, probs: np.ndarray) -> None:
        """Blend one chip's ``(K, chip, chip)`` probabilities (only its part inside the scene is kept).

        Where the chip alone counts (weight 1, every neighbour's 0) its
        probabilities are copied; elsewhere they are weighted, and written
        where it is the first chip to touch the pixels, added where an
        earlier chip did.
        """
        if chip.y0 < self.y:
            raise ValueError(f"chip at row {chip.y0} arrived after rows up to {self.y} were finished")
        self.flush(chip.y0)
        ys, xs = self.yspans[chip.row], self.xspans[chip.col]
        (ty0, ty1), (tx0, tx1) = ys.touched, xs.touched
        (oy0, oy1), (ox0, ox1) = ys.own, xs.own
        origin = (int(chip.window.row_off), int(chip.window.col_off), chip.y0, chip.x0)
        if oy0 >= oy1 or ox0 >= ox1:
            self._blend(chip, probs, origin, (ty0, ty1, tx0, tx1))
            return
        for part in ((ty0, oy0, tx0, tx1), (oy1, ty1, tx0, tx1), (oy0, oy1, tx0, ox0), (oy0, oy1, ox1, tx1)):
            if part[0] < part[1] and part[2] < part[3]:
                self._blend(chip, probs, origin, part)
        p = probs[:, oy0 - origin[0] : oy1 - origin[0], ox0 - origin[1] : ox1 - origin[1]]
        for ring, local in self._ring(oy0, oy1):
            self.acc[:, ring, ox0 - self.ex0 : ox1 - self.ex0] = p[:, local]
            self.wsum[ring, ox0 - self.ex0 : ox1 - self.ex0] = 1.0

    def _blend(self, chip: Chip, probs: np.ndarray, origin: tuple[int, int, int, int], part: tuple[int, int, int, int]) -> None:
        """Add the chip's probabilities times its weights over scene rows [y0, y1) and columns [x0, x1).

        Where no earlier chip of the grid reaches (below every earlier grid
        row and right of every earlier chip of this row) the accumulators are
        still 0 there: the weighted values are written in one pass instead of
        added (the same values: 0 + x is x).
        """
        y0, y1, x0, x1 = part
        wy, wx, iy, ix = origin  # the chip's window and its inside part start here
        p = probs[:, y0 - wy : y1 - wy, x0 - wx : x1 - wx]
        w = self._chip_weights(chip)[y0 - iy : y1 - iy, x0 - ix : x1 - ix]
        first = x1 - x0  # columns [x0, x0 + first) were touched by an earlier chip (added); the rest are written
        if y0 >= self.yspans[chip.row].reach:
            first = min(x1, max(x0, self.xspans[chip.col].reach)) - x0
        for ring, local in self._ring(y0, y1):
            if first > 0:
                cols = slice(x0 - self.ex0, x0 + first - self.ex0)
                tmp = self.scratch[:, : local.stop - local.start, :first]
                self._multiply(p[:, local, :first], w[None, local, :first], tmp)
                self.acc[:, ring, cols] += tmp
                self.wsum[ring, cols] += w[local, :first]
            if first < x1 - x0:
                cols = slice(x0 + first - self.ex0, x1 - self.ex0)
                self._multiply(p[:, local, first:], w[None, local, first:], self.acc[:, ring, cols])
                self.wsum[ring, cols] = w[local, first:]

    def flush(self, y_end: int) -> None:
        """Hand rows [current, y_end) to the sink: no chip added from now on may touch them.

        The sink gets views of the accumulators, divided by the weights in
        place; they are cleared when it returns (a sink copies what it keeps).
        """
        bx0, bx1 = self.x0 - self.ex0, self.x1 - self.ex0
        while self.y < y_end:
            start = self.y % self.height
            y1 = min(y_end, self.y + EMIT_ROWS, self.y + self.height - start)  # never across the ring's end
            ring = slice(start, start + y1 - self.y)
            probs, weight = self.acc[:, ring, bx0:bx1], self.wsum[ring, bx0:bx1]
            self._divide(probs, weight)
            if not weight.all():  # rows no chip reached (an area of interest): 0, as they were accumulated
                probs[:, weight == 0] = 0
            self.sink(self.y, y1, probs, weight)
            self.acc[:, ring] = 0
            self.wsum[ring] = 0
            self.y = y1

    def finish(self) -> None:
        """Hand the remaining rows to the sink."""
        self.flush(self.grid.height)

    # the array operations: numpy here, torch on the model's device in TorchStitcher

    def _zeros(self, shape: tuple[int, ...]) -> Any:
        return np.zeros(shape, dtype=np.float32)

    def _array(self, values: np.ndarray) -> Any:
        return values.astype(np.float32, copy=False)

    def _multiply(self, a: Any, b: Any, out: Any) -> None:
        np.multiply(a, b, out=out)

    def _divide(self, probs: Any, weight: Any) -> None:
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(probs, weight, out=probs)  # a plain divide is ~3x faster than one with where=


class TorchStitcher(Stitcher):
    """The :class:`Stitcher` on torch tensors on ``device`` (a GPU): chips' probabilities stay there, and so do
    the accumulators; the sink gets the finished rows as tensors on the device (the same values as numpy's).

    Example:
        >>> from geoseg.core.grid import make_grid
        >>> import torch
        >>> grid = make_grid(40, 30, 16, "4px")
        >>> rows = []
        >>> st = TorchStitcher(grid, 0, 40, 2, lambda y0, y1, p, w: rows.append(float(p.sum())), device="cpu")
        >>> for chip in grid:
        ...     st.add(chip, torch.full((2, 16, 16), 0.5))
        >>> st.finish()
        >>> sum(rows) == 40 * 30
        True
    """

    def __init__(self, grid: Grid, x0: int, x1: int, num_classes: int, sink: RowSink, device: str = "cuda") -> None:
        import torch

        self.torch, self.device = torch, device
        super().__init__(grid, x0, x1, num_classes, sink)

    def _zeros(self, shape: tuple[int, ...]) -> Any:
        return self.torch.zeros(shape, dtype=self.torch.float32, device=self.device)

    def _array(self, values: np.ndarray) -> Any:
        return self.torch.from_numpy(values.astype(np.float32)).to(self.device)

    def _multiply(self, a: Any, b: Any, out: Any) -> None:
        self.torch.mul(a, b, out=out)

    def _divide(self, probs: Any, weight: Any) -> None:
        probs.div_(weight)
