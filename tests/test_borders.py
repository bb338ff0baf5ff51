"""Scene borders (issue 15, part 4): chips at the scene's edge reach past it and see the scene mirrored, not zeros.

The edge effect is measured on scenes whose rows and columns come in equal
pairs (every row repeated once): the true class map is then the same for both
rows of a pair, also for the first and last pair, so the class may change
between the rows of a pair along the scene's edge no more often than inside.
``stitched`` replays the chip loop with a chosen layout and padding:
``("snap", "zero")`` is what geoseg did before (chips inside the scene, the
edge on the chip's edge, zeros past a scene smaller than a chip) and
``("mirror", "reflect")`` what :func:`geoseg.predict` does now (checked
against it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.windows import Window

import geoseg
from geoseg.core.classes import IGNORE_INDEX
from geoseg.core.grid import axis_offsets, make_grid, parse_overlap
from geoseg.inference.backends import TorchRunner
from geoseg.inference.batches import iter_batches
from geoseg.inference.stitch import Stitcher
from geoseg.io.raster import read_window, reflect_index, window_inside
from tests.helpers import SAMPLE, random_scene, tiny_unet, write_raster


def stitched(scene: Path, model: Any, edges: str, pad: str, batch_size: int = 2) -> np.ndarray:
    """Probabilities ``(K, H, W)`` of ``model`` over ``scene``: the chip loop with grid ``edges`` and read ``pad``."""
    with rasterio.open(scene) as ds:
        card = model.card
        grid = make_grid(ds.width, ds.height, card.chip_size, card.overlap, ds.transform, edges=edges)
        out = np.zeros((card.num_classes, ds.height, ds.width), np.float32)

        def sink(y0: int, y1: int, probs: np.ndarray, weight: np.ndarray) -> None:
            out[:, y0:y1] = probs

        stitcher = Stitcher(grid, 0, ds.width, card.num_classes, sink)
        runner = TorchRunner(model, device="cpu")
        indexes = list(range(1, ds.count + 1))
        read = lambda chip: read_window(ds, chip.window, indexes, pad=pad)  # noqa: E731
        for batch in iter_batches(iter(grid), read, model.normalize, batch_size):
            for chip, probs in zip(batch.chips, runner(batch.data) if batch.chips else []):
                stitcher.add(chip, probs)
        stitcher.finish()
    return out


def pair_changes(classes: np.ndarray) -> dict[str, float]:
    """Share of pixels whose class differs between the two equal rows (columns) of a pair: at each edge and inside."""
    h, w = classes.shape
    differ = lambda a, b: float((a != b).mean())  # noqa: E731
    edges = {
        "top": differ(classes[0], classes[1]),
        "bottom": differ(classes[h - 2], classes[h - 1]),
        "left": differ(classes[:, 0], classes[:, 1]),
        "right": differ(classes[:, w - 2], classes[:, w - 1]),
    }
    rows = [differ(classes[k], classes[k + 1]) for k in range(2, h - 3, 2)]
    cols = [differ(classes[:, k], classes[:, k + 1]) for k in range(2, w - 3, 2)]
    return {**edges, "edge": float(np.mean(list(edges.values()))), "inside": float(np.mean(rows + cols))}


def paired_scene(tmp: Path, height: int, width: int, name: str = "paired.tif") -> Path:
    """A crop of the Sentinel-2 sample with every row and column doubled: ``2 * height`` x ``2 * width`` pixels."""
    with rasterio.open(SAMPLE) as src:
        crop = src.read(window=Window(40, 30, width, height))
        descriptions, crs, transform = list(src.descriptions), src.crs.to_string(), src.transform
    data = np.repeat(np.repeat(crop, 2, axis=1), 2, axis=2)
    return write_raster(tmp / name, data, crs=crs, transform=transform, descriptions=descriptions)


# -- the grid ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 5, 31, 32, 33, 45, 67, 100, 191, 192, 700])
@pytest.mark.parametrize(("chip", "overlap"), [(32, "8px"), (32, "16px"), (64, 0.25), (16, 0), (33, "31px")])
def test_mirror_layout_puts_the_edge_inside_its_chips_and_keeps_the_inner_chips(length, chip, overlap) -> None:
    over = parse_overlap(overlap, chip)
    stride, margin = chip - over, over // 2
    snapped = axis_offsets(length, chip, stride)
    mirrored = axis_offsets(length, chip, stride, margin)
    assert mirrored[0] <= -margin and mirrored[-1] + chip >= length + margin  # edge pixels lie >= margin inside a chip
    covered = np.zeros(length, bool)
    for o in mirrored:
        covered[max(o, 0) : o + chip] = True
    assert covered.all() and list(mirrored) == sorted(set(mirrored))
    if length > chip:  # the same count, only the first and last chips moved outward
        assert len(mirrored) == len(snapped) and mirrored[1:-1] == snapped[1:-1]
    elif length + 2 * margin <= chip:  # one chip, the scene in its middle
        assert len(mirrored) == 1 and abs(-mirrored[0] - (mirrored[0] + chip - length)) <= 1


def test_chips_reaching_past_the_scene_know_their_inside_part() -> None:
    grid = make_grid(67, 45, 32, "8px", edges="mirror")
    assert (grid.xs, grid.ys, grid.margin) == ((-4, 24, 39), (-4, 17), 4)
    first, last = grid.chip(0, 0), grid.chip(1, 2)
    assert (first.x0, first.y0, first.x1, first.y1) == (0, 0, 28, 28)
    assert first.inside == (slice(4, 32), slice(4, 32)) and last.inside == (slice(0, 28), slice(0, 28))
    assert first.transform @ (4, 4) == grid.transform @ (0, 0)
    assert first.bounds == (0, 0, 28, 28)  # the part inside the scene (identity transform)
    assert make_grid(67, 45, 32, "8px").xs == (0, 24, 35)  # the default layout is unchanged


# -- mirrored reads -------------------------------------------------------------------------------------------

WINDOWS = [(-4, -4, 32, 32), (40, 20, 32, 32), (-9, 30, 12, 40), (0, 0, 23, 17), (-30, -25, 80, 70), (5, 3, 8, 8)]


@pytest.mark.parametrize("window", WINDOWS)
def test_mirrored_read_is_numpys_reflect_pad(tmp_path: Path, window) -> None:
    data = random_scene((3, 17, 23), "uint16", seed=7)
    data[:, 2:4, 5:9] = 0  # nodata inside the scene stays nodata, mirrored too
    scene = write_raster(tmp_path / "s.tif", data, nodata=0)
    x, y, w, h = window
    p = 100
    expected = np.pad(data.astype(np.float32), ((0, 0), (p, p), (p, p)), mode="reflect")[:, p + y : p + y + h, p + x : p + x + w]
    expected_valid = np.pad((data != 0).all(0), p, mode="reflect")[p + y : p + y + h, p + x : p + x + w]
    with rasterio.open(scene) as ds:
        got, valid = read_window(ds, Window(x, y, w, h), [1, 2, 3], pad="reflect")
        zero, zero_valid = read_window(ds, Window(x, y, w, h), [1, 2, 3])
    assert np.array_equal(got, expected) and np.array_equal(valid, expected_valid)
    inside = np.zeros((h, w), bool)
    inside[window_inside(Window(x, y, w, h), 23, 17)] = True
    assert np.array_equal(zero_valid, valid & inside) and (zero[:, ~inside] == 0).all()  # pad="zero": as before
    assert np.array_equal(zero[:, inside], got[:, inside])


def test_reflect_index_long_windows_and_single_pixel_axes() -> None:
    for length in (1, 2, 5):
        for start in (-13, -1, 0, 3):
            expected = np.pad(np.arange(length), 40, mode="reflect")[40 + start : 40 + start + 20]
            assert np.array_equal(reflect_index(start, 20, length), expected)


# -- prediction near the edge ---------------------------------------------------------------------------------


def test_predict_mirrors_the_edge_and_keeps_the_inner_pixels(tmp_path: Path) -> None:
    """predict is the mirrored chip loop; pixels more than a chip from the edge are what the snapped grid gave."""
    data = random_scene((4, 150, 203), "uint16", seed=8)  # not a multiple of the stride (48)
    scene = write_raster(tmp_path / "s.tif", data, descriptions=["B02", "B03", "B04", "B08"])
    model = tiny_unet(["B02", "B03", "B04", "B08"], 3)  # chip 64, overlap 16px: margin 8
    geoseg.predict(scene, model, tmp_path / "c.tif", probabilities=tmp_path / "p.tif", backend="torch")
    with rasterio.open(tmp_path / "c.tif") as ds:
        classes = ds.read(1)
    mirrored = stitched(scene, model, "mirror", "reflect")
    snapped = stitched(scene, model, "snap", "zero")
    assert (classes == mirrored.argmax(0)).mean() > 0.999  # predict runs this chip loop (up to float rounding)
    inner = (slice(64, 150 - 64), slice(64, 203 - 64))
    assert np.array_equal(mirrored[(slice(None), *inner)], snapped[(slice(None), *inner)])  # bit for bit
    assert not np.array_equal(mirrored[:, :, :8], snapped[:, :, :8])  # the edge changes by design


def test_identity_round_trip_of_mirrored_chips(tmp_path: Path) -> None:
    """Every pixel is covered with positive weight and only inside pixels are kept: an identity model returns the scene."""
    for width, height, chip, overlap in ((67, 45, 32, "8px"), (20, 13, 32, 0.25), (1, 1, 8, "4px"), (100, 7, 16, "15px")):
        data = random_scene((3, height, width), "uint16", seed=9)
        scene = write_raster(tmp_path / f"s{width}.tif", data)
        with rasterio.open(scene) as ds:
            grid = make_grid(width, height, chip, overlap, edges="mirror")
            out = np.zeros((3, height, width), np.float32)
            weight = np.zeros((height, width), np.float32)

            def sink(y0, y1, probs, w, out=out, weight=weight):
                out[:, y0:y1], weight[y0:y1] = probs, w

            st = Stitcher(grid, 0, width, 3, sink)
            for c in grid:
                st.add(c, read_window(ds, c.window, [1, 2, 3], pad="reflect")[0])
            st.finish()
        assert (weight > 0).all()
        np.testing.assert_allclose(out, data.astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize(("width", "height"), [(20, 13), (64, 64), (1, 1)])
def test_scene_smaller_than_a_chip_sits_in_mirrored_context(tmp_path: Path, width: int, height: int) -> None:
    data = random_scene((4, height, width), "uint16", seed=4)
    scene = write_raster(tmp_path / "small.tif", data, descriptions=["B02", "B03", "B04", "B08"])
    model = tiny_unet(["B02", "B03", "B04", "B08"], 3)
    grid = make_grid(width, height, 64, "16px", edges="mirror")  # the scene's edge lies >= 8 px (the margin) inside
    assert min(grid.xs) <= -8 and max(grid.xs) + 64 >= width + 8 and min(grid.ys) <= -8 and max(grid.ys) + 64 >= height + 8
    geoseg.predict(scene, model, tmp_path / "c.tif", backend="torch")
    with rasterio.open(tmp_path / "c.tif") as ds:
        classes = ds.read(1)
    assert classes.shape == (height, width) and (classes < 3).all()
    assert (classes == stitched(scene, model, "mirror", "reflect").argmax(0)).mean() > 0.999


@pytest.mark.slow
@pytest.mark.parametrize(("height", "width"), [(235, 250), (50, 60)], ids=["470x500", "100x120_smaller_than_a_chip"])
def test_edge_changes_class_no_more_than_inside(tmp_path: Path, height: int, width: int, record_property) -> None:
    """The issue's test: a scene whose first rows equal its next rows must not change class along the edge more than inside.

    The bundled model (chip 256, overlap 64: margin 32) on the Sentinel-2 sample with every row and column doubled;
    470 x 500 px is not a multiple of the stride (192), 100 x 120 px is smaller than one chip.
    """
    model = geoseg.load_model("default")
    scene = paired_scene(tmp_path, height, width)
    before = pair_changes(stitched(scene, model, "snap", "zero").argmax(0))
    geoseg.predict(scene, model, tmp_path / "c.tif", backend="torch")
    with rasterio.open(tmp_path / "c.tif") as ds:
        after = pair_changes(ds.read(1))
    record_property("pair_changes_before", before)
    record_property("pair_changes_after", after)
    print(f"\n{2 * height}x{2 * width} before (zeros): {before}\n{2 * height}x{2 * width} after (mirrored): {after}")
    assert before["edge"] > 1.5 * before["inside"]  # the old edge effect, measured
    assert after["edge"] <= after["inside"] + 0.005  # mirrored: no more class changes along the edge than inside
    assert max(after[k] for k in ("top", "bottom", "left", "right")) <= 2 * after["inside"] + 0.01


# -- training chips -------------------------------------------------------------------------------------------


class _AllLabeled:
    """Labels that cover every window with class 1, also past the scene (as polygons reaching out of it do)."""

    def read(self, window: Window) -> np.ndarray:
        return np.ones((int(window.height), int(window.width)), np.uint8)

    def close(self) -> None:
        """Nothing to close."""


def test_training_chips_at_the_edge_are_mirrored_and_ignore_the_outside(tmp_path: Path) -> None:
    from geoseg.training.data import index_scene

    data = random_scene((2, 50, 70), "uint16", seed=5)
    data[:, 10:14, 20:30] = 0
    scene = index_scene(str(write_raster(tmp_path / "s.tif", data, nodata=0)), _AllLabeled(), [1, 2], 2, stride=16)
    try:
        valid = (data != 0).all(0)
        assert scene.valid_count.sum() == valid.sum()  # statistics count the pixels inside only, once
        p = 64
        padded = np.pad(data.astype(np.float32), ((0, 0), (p, p), (p, p)), mode="reflect")
        for x, y in ((-8, -8), (48, 30), (-20, 20)):
            raw, ok, labels = scene.read(Window(x, y, 32, 32))
            assert np.array_equal(raw, padded[:, p + y : p + y + 32, p + x : p + x + 32])
            inside = np.zeros((32, 32), bool)
            inside[window_inside(Window(x, y, 32, 32), 70, 50)] = True
            assert (labels[~inside] == IGNORE_INDEX).all()  # mirrored context is never a label
            assert np.array_equal(labels[inside], np.where(ok, 1, IGNORE_INDEX)[inside])
            assert ok[~inside].any()  # ... but it is valid input for the model
    finally:
        scene.close()


def test_tile_pads_a_scene_smaller_than_a_chip_with_nothing_invented(tmp_path: Path) -> None:
    """Past the scene the image chip is masked out (no nodata value: zeros under the chip's mask), the labels 255."""
    from geoseg.training.chipset import tile

    data = random_scene((3, 20, 27), "uint16", seed=6)
    image = write_raster(tmp_path / "s.tif", data, descriptions=["B02", "B03", "B04"])
    truth = np.where(np.arange(27)[None, :] < 13, 1, 2).repeat(20, 0).astype(np.uint8)
    mask = write_raster(tmp_path / "mask.tif", truth, nodata=0)
    result = tile(image, tmp_path / "chips", labels=mask, chip_size=32)
    assert result.written == 1
    with rasterio.open(tmp_path / "chips" / "images" / "s_r0000_c0000.tif") as ci, rasterio.open(image) as ds:
        chip, valid = ci.read(), ci.dataset_mask() > 0
        assert ci.transform == ds.transform
    assert np.array_equal(chip, np.pad(data, ((0, 0), (0, 12), (0, 5))))  # the scene, then zeros: nothing mirrored
    assert valid[:20, :27].all() and not valid[20:].any() and not valid[:, 27:].any()
    with rasterio.open(tmp_path / "chips" / "masks" / "s_r0000_c0000.tif") as cm:
        labels = cm.read(1)
    assert (labels[20:] == IGNORE_INDEX).all() and (labels[:, 27:] == IGNORE_INDEX).all()
    assert set(np.unique(labels[:20, :27])) == {0, 1}  # the two mask values, as class ids 0 and 1


@settings(max_examples=80, deadline=None)
@given(
    width=st.integers(1, 200),
    height=st.integers(1, 200),
    chip=st.sampled_from([8, 16, 32, 64]),
    fraction=st.floats(0, 0.95, allow_nan=False),
    seed=st.integers(0, 2**32 - 1),
)
def test_mirrored_chips_stitch_back_to_the_scene(width, height, chip, fraction, seed) -> None:
    """Any size, chip and overlap: mirrored chips cover the scene with positive weight and stitch back to it exactly."""
    values = np.random.default_rng(seed).random((2, height, width)).astype(np.float32)
    grid = make_grid(width, height, chip, fraction, edges="mirror")
    out = np.full_like(values, np.nan)
    weight = np.zeros((height, width), np.float32)

    def sink(y0, y1, probs, w):
        out[:, y0:y1], weight[y0:y1] = probs, w

    st_ = Stitcher(grid, 0, width, 2, sink)
    for c in grid:
        rows = reflect_index(int(c.window.row_off), chip, height)
        cols = reflect_index(int(c.window.col_off), chip, width)
        st_.add(c, values[:, rows][:, :, cols])
    st_.finish()
    assert (weight > 0).all()
    np.testing.assert_allclose(out, values, rtol=1e-5, atol=1e-6)
    assert grid.xs[0] <= -grid.margin and grid.xs[-1] + chip >= width + grid.margin


def test_a_nodata_collar_stays_nodata_and_only_the_raster_edge_is_mirrored(tmp_path: Path) -> None:
    """Landsat-like diagonal collar: its pixels are nodata in every output; valid pixels next to it are classified."""
    from tests.helpers import BandLogits, wrap

    data = random_scene((3, 60, 70), "uint16", seed=3)
    yy, xx = np.mgrid[:60, :70]
    collar = xx + yy < 25  # a diagonal nodata corner at the scene's top left
    data[:, collar] = 0
    scene = write_raster(tmp_path / "collar.tif", data, nodata=0)
    geoseg.predict(scene, wrap(BandLogits(), 3, 3, 32, "8px"), tmp_path / "c.tif", backend="torch")
    with rasterio.open(tmp_path / "c.tif") as ds:
        classes = ds.read(1)
    assert np.array_equal(classes == 255, collar)
    assert np.array_equal(classes[~collar], data.astype(np.float32).argmax(0)[~collar])


def test_blocks_predicted_apart_equal_the_whole_scene_with_mirrored_edges(tmp_path: Path) -> None:
    """The Dask split (``predict(columns=...)`` joined by ``assemble_blocks``) keeps the same pixels, edges included."""
    from geoseg.inference.blocks import assemble_blocks

    data = random_scene((4, 75, 301), "uint16", seed=12)
    scene = write_raster(tmp_path / "wide.tif", data, descriptions=["B02", "B03", "B04", "B08"])
    model = tiny_unet(["B02", "B03", "B04", "B08"], 3)
    geoseg.predict(scene, model, tmp_path / "whole.tif", backend="torch")
    parts = [
        (x0, geoseg.predict(scene, model, tmp_path / f"b{x0}.tif", backend="torch", columns=(x0, x1)))
        for x0, x1 in ((0, 100), (100, 301))
    ]
    assemble_blocks(scene, parts, {"classes": tmp_path / "joined.tif"}, model.card)
    with rasterio.open(tmp_path / "whole.tif") as a, rasterio.open(tmp_path / "joined.tif") as b:
        assert np.array_equal(a.read(), b.read())
