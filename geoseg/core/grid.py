"""Tiling: lay a grid of overlapping chips over a scene.

Pure functions over small values; no file is opened here. A :class:`Grid`
covers every pixel of a ``width`` x ``height`` scene with square chips of
``chip_size`` pixels placed every ``chip_size - overlap`` pixels. With
``edges="snap"`` (the default) the last row and column are snapped to the
scene's edge, and a scene smaller than a chip gets one chip that reaches past
its edge (the reader pads it). With ``edges="mirror"`` (what prediction
uses) the first and last chips of each axis reach past the scene's edge by
half the overlap, and a scene smaller than a chip sits in the middle of its
chip, so no pixel of the scene lies on a chip's outer edge; the reader fills
the outside by mirroring the scene (:func:`geoseg.io.raster.read_window`)
and the stitcher keeps only the inside. Chips between the first and last
are the same in both layouts. Each :class:`Chip` carries its window and the
affine transform of that window, so georeferencing travels with the chip to
the stitcher.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from affine import Affine
from rasterio.windows import Window

from geoseg.core.errors import InputError, OptionError
from geoseg.core.options import Overlap

__all__ = [
    "EDGES",
    "Chip",
    "Grid",
    "axis_offsets",
    "edge_margin",
    "make_grid",
    "north_up",
    "north_up_flips",
    "north_up_grid",
    "parse_overlap",
    "split_columns",
]

EDGES = ("snap", "mirror")
"""How chips meet the scene's edge: snapped inside it, or reaching past it by :func:`edge_margin` (mirrored)."""


def parse_overlap(value: str | float | Overlap, chip_size: int) -> int:
    """Return the overlap in pixels for a fraction of the chip or a ``"<N>px"`` string (see :class:`Overlap`).

    A float (or a string holding one) is a fraction in [0, 1) of ``chip_size``;
    an ``int`` or a string ending in ``px`` is a number of pixels smaller than
    the chip.

    Example:
        >>> parse_overlap(0.25, 256), parse_overlap("64px", 256), parse_overlap("0.5", 128)
        (64, 64, 64)
    """
    return Overlap.parse(value).pixels(chip_size)


def edge_margin(overlap: int) -> int:
    """Pixels the first and last chips reach past the scene's edge with ``edges="mirror"``: half the overlap.

    Half the overlap keeps an overlap of at least half between those chips and
    their neighbours (blended as usual) and puts the scene's edge pixels that
    many pixels inside their chip, away from the model's own zero padding.

    Example:
        >>> edge_margin(64), edge_margin(1), edge_margin(0)
        (32, 0, 0)
    """
    return max(0, overlap) // 2


def axis_offsets(length: int, chip_size: int, stride: int, margin: int | None = None) -> tuple[int, ...]:
    """Chip start offsets along one axis: every ``stride`` pixels, the last snapped to the edge.

    The count is ``ceil((length - chip_size) / stride) + 1`` so the chips reach
    the edge; a length smaller than a chip gives the single offset 0.

    With a ``margin`` (``edges="mirror"``, at most the overlap) the first
    offset is ``-margin`` and the last ``length - chip_size + margin``; those
    between are unchanged. A length of at most ``chip_size - 2 * margin`` gets
    one chip centred on it, a longer one up to ``chip_size`` two chips.

    Example:
        >>> axis_offsets(1000, 256, 192)
        (0, 192, 384, 576, 744)
        >>> axis_offsets(100, 256, 192)
        (0,)
        >>> axis_offsets(1000, 256, 192, margin=32)
        (-32, 192, 384, 576, 776)
        >>> axis_offsets(100, 256, 192, margin=32), axis_offsets(256, 256, 192, margin=32)
        ((-78,), (-32, 32))
    """
    if length <= 0:
        raise InputError(f"raster size {length} must be at least one pixel")
    if stride <= 0:
        raise InputError(f"stride {stride} must be positive: make the overlap smaller than the chip")
    if margin is not None and not 0 <= margin <= chip_size - stride:
        raise InputError(f"edge margin {margin} must lie between 0 and the overlap {chip_size - stride}")
    if margin is not None and length + 2 * margin <= chip_size:
        return (-((chip_size - length) // 2),)
    if margin is not None and length <= chip_size:
        return (-margin, length - chip_size + margin)
    if length <= chip_size:
        return (0,)
    count = math.ceil((length - chip_size) / stride) + 1
    offsets = [i * stride for i in range(count - 1)] + [length - chip_size]
    if margin:
        offsets[0], offsets[-1] = -margin, length - chip_size + margin
    return tuple(sorted(set(offsets)))


@dataclass(frozen=True)
class Chip:
    """One model input window on the grid, with its georeferencing.

    ``window`` may reach past the scene's edges (a scene smaller than a chip,
    or ``edges="mirror"``: it may then start at a negative offset);
    ``transform`` is the georeferencing of the whole window. :attr:`x0` ..
    :attr:`y1` and :attr:`valid_window` are the part inside the scene, and
    :attr:`inside` says where that part lies in the chip.

    Example:
        >>> chip = make_grid(100, 100, 64, "32px", edges="mirror").chip(0, 0)
        >>> chip.window.col_off, chip.x0, chip.x1, chip.inside[1]
        (-16, 0, 48, slice(16, 64, None))
    """

    row: int
    col: int
    window: Window
    transform: Affine
    scene_width: int
    scene_height: int

    @property
    def x0(self) -> int:
        """First column of the chip inside the scene."""
        return max(0, int(self.window.col_off))

    @property
    def y0(self) -> int:
        """First row of the chip inside the scene."""
        return max(0, int(self.window.row_off))

    @property
    def x1(self) -> int:
        """Column just past the chip's last column inside the scene."""
        return min(int(self.window.col_off + self.window.width), self.scene_width)

    @property
    def y1(self) -> int:
        """Row just past the chip's last row inside the scene."""
        return min(int(self.window.row_off + self.window.height), self.scene_height)

    @property
    def valid_window(self) -> Window:
        """The part of the chip inside the scene (a chip reaching past the scene is padded)."""
        return Window(self.x0, self.y0, self.x1 - self.x0, self.y1 - self.y0)

    @property
    def inside(self) -> tuple[slice, slice]:
        """(rows, columns) of the chip's array that lie inside the scene, as slices."""
        dy, dx = self.y0 - int(self.window.row_off), self.x0 - int(self.window.col_off)
        return slice(dy, dy + self.y1 - self.y0), slice(dx, dx + self.x1 - self.x0)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of the part inside the scene, in scene CRS units."""
        a = self.transform
        if self.x0 != self.window.col_off or self.y0 != self.window.row_off:
            a = a * Affine.translation(self.x0 - int(self.window.col_off), self.y0 - int(self.window.row_off))
        w, h = self.x1 - self.x0, self.y1 - self.y0
        xs = (a.c, a.c + a.a * w + a.b * h, a.c + a.a * w, a.c + a.b * h)
        ys = (a.f, a.f + a.d * w + a.e * h, a.f + a.d * w, a.f + a.e * h)
        return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class Grid:
    """A grid of square chips covering a scene, in row-major order.

    Build one with :func:`make_grid`.
    """

    width: int
    height: int
    chip_size: int
    overlap: int
    transform: Affine
    xs: tuple[int, ...] = field(repr=False)
    ys: tuple[int, ...] = field(repr=False)
    edges: str = "snap"

    @property
    def margin(self) -> int:
        """Pixels the edge chips reach past the scene (0 with ``edges="snap"``)."""
        return edge_margin(self.overlap) if self.edges == "mirror" else 0

    @property
    def rows(self) -> int:
        """Number of chip rows."""
        return len(self.ys)

    @property
    def cols(self) -> int:
        """Number of chip columns."""
        return len(self.xs)

    def __len__(self) -> int:
        return self.rows * self.cols

    def chip(self, row: int, col: int) -> Chip:
        """The chip at grid position (row, col)."""
        x, y = self.xs[col], self.ys[row]
        window = Window(x, y, self.chip_size, self.chip_size)
        return Chip(row, col, window, self.transform @ Affine.translation(x, y), self.width, self.height)

    def __iter__(self) -> Iterator[Chip]:
        for row in range(self.rows):
            for col in range(self.cols):
                yield self.chip(row, col)

    def columns_in(self, x0: int, x1: int) -> list[int]:
        """Grid column indexes whose chips intersect the scene columns [x0, x1).

        Example:
            >>> make_grid(67, 45, 32, "8px").columns_in(30, 40)  # chips at x = 0, 24 and 35 reach columns 30..39
            [0, 1, 2]
        """
        return [c for c, x in enumerate(self.xs) if x < x1 and min(x + self.chip_size, self.width) > x0]

    def iter_chips(self, x0: int, x1: int, rows: Iterable[int] | None = None) -> Iterator[Chip]:
        """Chips (row-major, made one at a time) whose columns intersect the scene columns [x0, x1)."""
        cols = self.columns_in(x0, x1)
        for r in range(self.rows) if rows is None else rows:
            for c in cols:
                yield self.chip(r, c)

    def chips_in_columns(self, x0: int, x1: int) -> list[Chip]:
        """Chips (row-major) whose columns intersect the scene columns [x0, x1), as a list."""
        return list(self.iter_chips(x0, x1))


def make_grid(
    width: int,
    height: int,
    chip_size: int,
    overlap: str | float | Overlap = 0.0,
    transform: Affine | None = None,
    edges: str = "snap",
) -> Grid:
    """Lay a grid of ``chip_size`` chips with ``overlap`` over a ``width`` x ``height`` scene.

    ``edges="snap"`` keeps chips inside the scene (a scene smaller than a chip
    gets one chip at 0); ``edges="mirror"`` lets the first and last chips of
    each axis reach :func:`edge_margin` pixels past the scene's edge and centres
    a scene smaller than a chip, for a reader that mirrors the scene there
    (see :func:`axis_offsets`).

    Example:
        >>> grid = make_grid(67, 45, 32, "8px")
        >>> grid.xs, grid.ys, len(grid)
        ((0, 24, 35), (0, 13), 6)
        >>> grid = make_grid(67, 45, 32, "8px", edges="mirror")
        >>> grid.xs, grid.ys, grid.margin
        ((-4, 24, 39), (-4, 17), 4)
    """
    if width <= 0 or height <= 0:
        raise InputError(f"raster size {width}x{height} must be at least 1x1 pixel")
    if edges not in EDGES:
        raise OptionError(f"edges {edges!r} must be one of {', '.join(EDGES)}")
    overlap_px = parse_overlap(overlap, chip_size)
    stride = chip_size - overlap_px
    margin = edge_margin(overlap_px) if edges == "mirror" else None
    return Grid(
        width=width,
        height=height,
        chip_size=chip_size,
        overlap=overlap_px,
        transform=transform if transform is not None else Affine.identity(),
        xs=axis_offsets(width, chip_size, stride, margin),
        ys=axis_offsets(height, chip_size, stride, margin),
        edges=edges,
    )


def split_columns(width: int, max_width: int, align: int = 256) -> list[tuple[int, int]]:
    """Split scene columns into vertical blocks at most ``max_width`` wide, edges on ``align``.

    Example:
        >>> split_columns(40000, 16384)
        [(0, 13568), (13568, 27136), (27136, 40000)]
    """
    if width <= max_width:
        return [(0, width)]
    count = math.ceil(width / max_width)
    step = math.ceil(width / count / align) * align
    edges = list(range(0, width, step)) + [width]
    return list(zip(edges[:-1], edges[1:]))


def north_up_flips(transform: Affine) -> tuple[int, ...]:
    """The axes of ``(..., rows, cols)`` arrays read from a raster with ``transform`` to flip so they show north up
    and west left: rows of a south-up raster (positive pixel height), columns of an east-to-west one.

    A model learned from north-up chips sees every chip this way; its output is flipped back onto the file's grid.

    Example:
        >>> north_up_flips(Affine(10, 0, 0, 0, -10, 0)), north_up_flips(Affine(10, 0, 0, 0, 10, 0))
        ((), (-2,))
    """
    return ((-2,) if transform.e > 0 else ()) + ((-1,) if transform.a < 0 else ())


def north_up(flips: tuple[int, ...], *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """``arrays`` (``(..., rows, cols)``) flipped along ``flips`` (:func:`north_up_flips`), as contiguous copies (the
    same arrays when there is nothing to flip); flipping again brings a model's output back onto the file's grid.

    Example:
        >>> a = np.arange(4).reshape(2, 2)
        >>> north_up((-2,), a)[0].tolist(), north_up((), a)[0] is a
        ([[2, 3], [0, 1]], True)
    """
    if not flips:
        return arrays
    return tuple(np.ascontiguousarray(np.flip(a, flips)) for a in arrays)


def north_up_grid(grid: Grid, flips: tuple[int, ...]) -> Grid:
    """``grid`` laid from the other end along each flipped axis (:func:`north_up_flips`), so the chips of a south-up
    scene cover the ground the chips of the same scene stored north up cover.

    Example:
        >>> g = make_grid(50, 100, 32, "8px", edges="mirror")
        >>> g.ys, north_up_grid(g, (-2,)).ys
        ((-4, 24, 48, 72), (-4, 20, 44, 72))
    """
    ys = tuple(grid.height - grid.chip_size - y for y in reversed(grid.ys)) if -2 in flips else grid.ys
    xs = tuple(grid.width - grid.chip_size - x for x in reversed(grid.xs)) if -1 in flips else grid.xs
    return dataclasses.replace(grid, xs=xs, ys=ys)
