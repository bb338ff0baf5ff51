"""The tiler: full coverage, snapping, padding, georeferencing of every chip."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from geoseg.core.errors import InputError
from geoseg.core.grid import axis_offsets, make_grid, parse_overlap, split_columns

SIZES = [(67, 45), (1, 1), (256, 256), (257, 300), (1000, 31), (5, 900)]


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize(("chip", "overlap"), [(32, "8px"), (64, 0.5), (16, 0), (256, 0.25), (33, "32px")])
def test_grid_covers_every_pixel_and_stays_on_the_scene(width: int, height: int, chip: int, overlap) -> None:
    grid = make_grid(width, height, chip, overlap)
    count = np.zeros((height, width), dtype=int)
    for c in grid:
        assert c.x0 >= 0 and c.y0 >= 0
        assert c.window.width == chip and c.window.height == chip
        # chips start inside the scene; they reach past it only when the scene is smaller than a chip
        if width >= chip:
            assert c.x0 + chip <= width
        else:
            assert c.x0 == 0
        if height >= chip:
            assert c.y0 + chip <= height
        count[c.y0 : c.y1, c.x0 : c.x1] += 1
    assert count.min() >= 1
    # the last row and column are snapped to the edge
    assert max(c.x1 for c in grid) == width and max(c.y1 for c in grid) == height
    # the count of chips is the ceil formula, no duplicates
    stride = chip - parse_overlap(overlap, chip)
    for length, offsets in ((width, grid.xs), (height, grid.ys)):
        expected = 1 if length <= chip else int(np.ceil((length - chip) / stride)) + 1
        assert len(offsets) == expected and len(set(offsets)) == len(offsets)


def test_chip_transforms_are_the_scene_transform_shifted() -> None:
    scene = Affine(10.0, 0.0, 330000.0, 0.0, -10.0, 5822040.0)
    grid = make_grid(67, 45, 32, "8px", scene)
    for c in grid:
        assert c.transform @ (0, 0) == scene @ (c.x0, c.y0)
        assert c.transform @ (5, 7) == scene @ (c.x0 + 5, c.y0 + 7)
        left, bottom, right, top = c.bounds
        assert (left, top) == scene @ (c.x0, c.y0)
        assert (right, bottom) == scene @ (c.x1, c.y1)


def test_geographic_south_up_transform_bounds() -> None:
    south_up = Affine(0.001, 0.0, 12.0, 0.0, 0.001, 52.0)
    chip = make_grid(100, 100, 64, 0.25, south_up).chip(0, 0)
    assert chip.bounds == pytest.approx((12.0, 52.0, 12.064, 52.064))


@pytest.mark.parametrize(
    ("value", "chip", "pixels"),
    [
        (0.25, 256, 64),
        ("0.25", 256, 64),
        ("64px", 256, 64),
        (" 64PX ", 256, 64),
        (0, 256, 0),
        (10, 256, 10),
        (0.999, 256, 255),
    ],
)
def test_parse_overlap(value, chip: int, pixels: int) -> None:
    assert parse_overlap(value, chip) == pixels


@pytest.mark.parametrize(
    ("value", "chip", "words"),
    [
        (1.0, 256, "fraction in [0, 1)"),
        (-0.1, 256, "fraction in [0, 1)"),
        ("256px", 256, "smaller than the chip"),
        ("-3px", 256, "at least 0"),
        ("abc", 256, "not a number"),
        ("nan", 256, "fraction"),
        (0.1, 0, "positive"),
        (0.1, -5, "positive"),
    ],
)
def test_bad_overlap_and_chip_size_are_refused(value, chip: int, words: str) -> None:
    with pytest.raises(InputError, match=words.replace("[", r"\[").replace(")", r"\)")):
        parse_overlap(value, chip)


def test_axis_offsets_examples() -> None:
    assert axis_offsets(256, 256, 192) == (0,)
    assert axis_offsets(257, 256, 192) == (0, 1)
    assert axis_offsets(448, 256, 192) == (0, 192)


def test_split_columns_aligned_and_complete() -> None:
    for width in (100, 16384, 16385, 50000):
        blocks = split_columns(width, 16384)
        assert blocks[0][0] == 0 and blocks[-1][1] == width
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
        assert all(x1 - x0 <= 16384 for x0, x1 in blocks)
        assert all(x0 % 256 == 0 for x0, _ in blocks)


def test_chips_in_columns_selects_intersecting_chips() -> None:
    grid = make_grid(1000, 300, 256, "64px")
    chips = grid.chips_in_columns(400, 600)
    assert {c.col for c in chips} == {c for c, x in enumerate(grid.xs) if x < 600 and x + 256 > 400}
    assert len(chips) == grid.rows * len({c.col for c in chips})
