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

import numpy as np

from geoseg.core.grid import Chip, Grid

__all__ = ["RowSink", "Stitcher", "chip_weights", "ramp"]

EMIT_ROWS = 64
"""Finished rows are handed to the sink in pieces of at most this many rows (bounds the transient arrays)."""

RowSink = Callable[[int, int, np.ndarray, np.ndarray], None]
"""``sink(y0, y1, probs, weight)``: finished rows [y0, y1) of the block's columns."""


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
    size = grid.chip_size
    top, bottom = _overlaps(grid.ys, chip.row, size)
    left, right = _overlaps(grid.xs, chip.col, size)
    wy = ramp(size, top) * ramp(size, bottom)[::-1]
    wx = ramp(size, left) * ramp(size, right)[::-1]
    rows, cols = chip.inside
    return np.outer(wy[rows], wx[cols])


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
        self.acc = np.zeros((num_classes, self.height, self.ex1 - self.ex0), dtype=np.float32)
        self.wsum = np.zeros((self.height, self.ex1 - self.ex0), dtype=np.float32)
        self.y = 0  # first row not yet handed to the sink; ring row of y is y % height
        self.sink = sink
        self._weights: dict[tuple[int, int], np.ndarray] = {}

    def _ring(self, y0: int, y1: int) -> list[tuple[slice, slice]]:
        """(ring rows, local rows) slice pairs for scene rows [y0, y1) (at most two pieces)."""
        start, n = y0 % self.height, y1 - y0
        first = min(n, self.height - start)
        pieces = [(slice(start, start + first), slice(0, first))]
        if first < n:
            pieces.append((slice(0, n - first), slice(first, n)))
        return pieces

    def add(self, chip: Chip, probs: np.ndarray) -> None:
        """Blend one chip's ``(K, chip, chip)`` probabilities (only its part inside the scene is kept)."""
        if chip.y0 < self.y:
            raise ValueError(f"chip at row {chip.y0} arrived after rows up to {self.y} were finished")
        self.flush(chip.y0)
        key = (chip.row, chip.col)
        weights = self._weights.get(key)
        if weights is None:
            weights = chip_weights(self.grid, chip)
            if len(self._weights) > 4 * self.grid.cols:
                self._weights.clear()
            self._weights[key] = weights
        h, w = weights.shape
        cx0 = chip.x0 - self.ex0
        probs = probs[(slice(None), *chip.inside)]
        for ring, local in self._ring(chip.y0, chip.y0 + h):
            self.acc[:, ring, cx0 : cx0 + w] += probs[:, local] * weights[None, local]
            self.wsum[ring, cx0 : cx0 + w] += weights[local]

    def flush(self, y_end: int) -> None:
        """Hand rows [current, y_end) to the sink: no chip added from now on may touch them."""
        bx0, bx1 = self.x0 - self.ex0, self.x1 - self.ex0
        while self.y < y_end:
            y1 = min(y_end, self.y + min(self.height, EMIT_ROWS))
            n = y1 - self.y
            probs = np.empty((self.acc.shape[0], n, bx1 - bx0), dtype=np.float32)
            weight = np.empty((n, bx1 - bx0), dtype=np.float32)
            for ring, local in self._ring(self.y, y1):
                weight[local] = self.wsum[ring, bx0:bx1]
                probs[:, local] = self.acc[:, ring, bx0:bx1]
                self.acc[:, ring] = 0
                self.wsum[ring] = 0
            covered = weight > 0
            np.divide(probs, weight, out=probs, where=covered[None])
            self.sink(self.y, y1, probs, weight)
            self.y = y1

    def finish(self) -> None:
        """Hand the remaining rows to the sink."""
        self.flush(self.grid.height)
