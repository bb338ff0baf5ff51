"""Property-based tests (hypothesis) of the tiler and the stitcher over random sizes, chips, overlaps
and transforms: full coverage, exact georeferencing, identity round trip."""

from __future__ import annotations

import numpy as np
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoseg.core.grid import make_grid, parse_overlap
from tests.test_stitch import stitch_array

sizes = st.integers(1, 700)
chips = st.sampled_from([8, 16, 32, 64, 128, 256])


@st.composite
def overlaps(draw, chip: int):
    if draw(st.booleans()):
        return f"{draw(st.integers(0, chip - 1))}px"
    return draw(st.floats(0, 0.95, allow_nan=False))


@st.composite
def transforms(draw):
    size_x = draw(st.floats(1e-5, 1000, allow_nan=False))
    size_y = draw(st.floats(1e-5, 1000, allow_nan=False)) * draw(st.sampled_from([-1, 1]))  # north- or south-up
    x0 = draw(st.floats(-1e7, 1e7, allow_nan=False))
    y0 = draw(st.floats(-1e7, 1e7, allow_nan=False))
    return Affine(size_x, 0.0, x0, 0.0, size_y, y0)


@settings(max_examples=150, deadline=None)
@given(width=sizes, height=sizes, chip=chips, data=st.data())
def test_grid_covers_every_pixel_once_or_more_and_snaps_to_the_edge(width, height, chip, data) -> None:
    overlap = data.draw(overlaps(chip))
    grid = make_grid(width, height, chip, overlap)
    stride = chip - parse_overlap(overlap, chip)
    # coverage along each axis (the grid is their product)
    for length, offsets in ((width, grid.xs), (height, grid.ys)):
        covered = np.zeros(length, bool)
        for o in offsets:
            assert 0 <= o and (o + chip <= length or (length < chip and o == 0))
            covered[o : o + chip] = True
        assert covered.all()
        assert max(min(o + chip, length) for o in offsets) == length
        assert list(offsets) == sorted(set(offsets))
        assert all(b - a <= stride for a, b in zip(offsets, offsets[1:]))
    assert len(grid) == len(grid.xs) * len(grid.ys)


@settings(max_examples=150, deadline=None)
@given(width=sizes, height=sizes, chip=chips, transform=transforms(), data=st.data())
def test_chip_georeferencing_is_exact(width, height, chip, transform, data) -> None:
    grid = make_grid(width, height, chip, data.draw(overlaps(chip)), transform)
    for c in list(grid)[:50]:
        assert c.transform == transform * Affine.translation(c.x0, c.y0)
        assert c.transform @ (0, 0) == transform @ (c.x0, c.y0)
        left, bottom, right, top = c.bounds
        xs = sorted([(transform @ (c.x0, c.y0))[0], (transform @ (c.x1, c.y1))[0]])
        ys = sorted([(transform @ (c.x0, c.y0))[1], (transform @ (c.x1, c.y1))[1]])
        scale = max(1.0, *(abs(v) for v in (*xs, *ys)))  # the same numbers up to float rounding
        assert np.allclose((left, right, bottom, top), (*xs, *ys), rtol=1e-12, atol=1e-12 * scale)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(1, 160),
    height=st.integers(1, 160),
    chip=st.sampled_from([8, 16, 32, 64]),
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
)
def test_stitching_the_identity_returns_the_input(width, height, chip, data, seed) -> None:
    overlap = data.draw(overlaps(chip))
    values = np.random.default_rng(seed).random((2, height, width)).astype(np.float32)
    grid = make_grid(width, height, chip, overlap)
    out, weight = stitch_array(values, grid, lambda a: a, 2)
    assert (weight > 0).all()
    np.testing.assert_allclose(out, values, rtol=1e-5, atol=1e-6)
