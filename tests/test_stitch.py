"""Stitching: identity round trip, exact agreement with a whole-scene forward pass, weights."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from geoseg.core.grid import make_grid
from geoseg.inference.backends import TorchRunner
from geoseg.inference.batches import iter_batches
from geoseg.inference.stitch import Stitcher, TorchStitcher, chip_weights
from tests.helpers import SmallConv, tiny_unet, wrap


def stitch_array(array: np.ndarray, grid, fn, num_classes: int, x0: int = 0, x1: int | None = None):
    """Tile ``array`` (C, H, W), apply ``fn`` to each padded chip, stitch; returns probs and weights."""
    x1 = grid.width if x1 is None else x1
    out = np.full((num_classes, grid.height, x1 - x0), np.nan, np.float32)
    weight = np.zeros((grid.height, x1 - x0), np.float32)

    def sink(y0, y1, probs, w):
        out[:, y0:y1] = probs
        weight[y0:y1] = w

    st = Stitcher(grid, x0, x1, num_classes, sink)
    size = grid.chip_size
    for chip in grid.chips_in_columns(x0, x1):
        padded = np.zeros((array.shape[0], size, size), np.float32)
        h, w = chip.y1 - chip.y0, chip.x1 - chip.x0
        padded[:, :h, :w] = array[:, chip.y0 : chip.y1, chip.x0 : chip.x1]
        st.add(chip, fn(padded))
    st.finish()
    return out, weight


@pytest.mark.parametrize(
    ("width", "height", "chip", "overlap"),
    [
        (67, 45, 32, "8px"),
        (67, 45, 16, 0.5),
        (20, 13, 32, 0.25),
        (100, 7, 16, "15px"),
        (1, 1, 8, 0),
        (64, 64, 32, 0),
    ],
)
def test_identity_round_trip_reproduces_the_input(width, height, chip, overlap) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 1000, (3, height, width)).astype(np.float32)
    grid = make_grid(width, height, chip, overlap)
    out, weight = stitch_array(data, grid, lambda a: a, 3)
    assert (weight > 0).all(), "every pixel gets a positive weight"
    np.testing.assert_allclose(out, data, rtol=1e-6)
    assert np.array_equal(np.rint(out), data)


def test_weights_full_at_scene_border_and_zero_margin_inside() -> None:
    grid = make_grid(67, 45, 32, "16px")
    first = chip_weights(grid, grid.chip(0, 0))
    assert (first[0, :8] == 1).all() and (first[:8, 0] == 1).all()  # scene border: full weight
    assert (first[:, -4:] == 0).all() and (first[-4:, :] == 0).all()  # toward neighbours: tapered to 0
    total = np.zeros((45, 67))
    for c in grid:
        total[c.y0 : c.y1, c.x0 : c.x1] += chip_weights(grid, c)
    assert total.min() > 0


def test_chips_out_of_order_are_refused() -> None:
    grid = make_grid(64, 64, 32, 0)
    st = Stitcher(grid, 0, 64, 1, lambda *a: None)
    st.add(grid.chip(1, 0), np.ones((1, 32, 32), np.float32))
    with pytest.raises(ValueError, match="after rows"):
        st.add(grid.chip(0, 0), np.ones((1, 32, 32), np.float32))


def _whole_and_tiled(model, data: np.ndarray, grid, x0=0, x1=None):
    runner = TorchRunner(model, device="cpu")
    with torch.inference_mode():
        whole = torch.softmax(model(torch.from_numpy(data[None])), 1)[0].numpy()
    tiled, weight = stitch_array(data, grid, lambda a: runner(a[None])[0], whole.shape[0], x0, x1)
    return whole, tiled, weight


@pytest.mark.parametrize(("overlap", "block"), [("16px", None), ("24px", None), ("16px", (16, 51))])
def test_tiled_equals_whole_scene_when_the_receptive_field_fits_the_margin(overlap, block) -> None:
    # SmallConv has a receptive-field radius of 2 px; the zero-weight margin is overlap // 4 >= 4 px.
    rng = np.random.default_rng(2)
    data = rng.normal(size=(2, 45, 67)).astype(np.float32)
    model = wrap(SmallConv(2, 3), 2, 3, 32, overlap)
    grid = make_grid(67, 45, 32, overlap)
    x0, x1 = block or (0, 67)
    whole, tiled, weight = _whole_and_tiled(model, data, grid, x0, x1)
    assert (weight > 0).all()
    np.testing.assert_allclose(tiled, whole[:, :, x0:x1], atol=1e-5)
    assert np.array_equal(tiled.argmax(0), whole[:, :, x0:x1].argmax(0))


@pytest.mark.slow
def test_real_unet_tiled_agreement_is_reported(record_property) -> None:
    """A real smp Unet sees less context in a chip than in the whole scene: report the agreement."""
    torch.manual_seed(0)
    model = tiny_unet(2, 4, chip_size=64, overlap="32px")
    rng = np.random.default_rng(3)
    coarse = rng.normal(size=(2, 24, 40))
    data = np.kron(coarse, np.ones((8, 8))).astype(np.float32)  # 192 x 320, a multiple of the stride
    grid = make_grid(320, 192, 64, "32px")
    whole, tiled, _ = _whole_and_tiled(model, data, grid)
    agreement = float((tiled.argmax(0) == whole.argmax(0)).mean())
    record_property("unet_tiled_vs_whole_agreement", agreement)
    print(f"\nUnet(resnet18, depth 3) tiled vs whole-scene argmax agreement: {agreement:.4f}")
    assert agreement > 0.9


def test_iter_batches_skips_empty_chips_and_fills_nodata_with_zero() -> None:
    grid = make_grid(64, 32, 32, 0)
    chips = list(grid)

    def read(chip):
        data = np.full((1, 32, 32), 5.0, np.float32)
        valid = np.ones((32, 32), bool)
        if chip.col == 0:
            valid[:] = False
        else:
            valid[:4] = False
        return data, valid

    batches = list(iter_batches(chips, read, lambda a: a - 1, batch_size=4))
    assert sum(b.skipped for b in batches) == 1
    chips_done = [c for b in batches for c in b.chips]
    assert [c.col for c in chips_done] == [1]
    data = batches[-1].data[0, 0]
    assert (data[:4] == 0).all() and (data[4:] == 4).all()


def test_reader_threads_each_read_one_band_of_columns_and_batches_keep_chip_order() -> None:
    """Neighbouring chips share the file's tiles: each thread (its own dataset and block cache) reads its own band of
    grid columns, so a tile is decoded by one thread; batches still come in chip order with the chips' own data."""
    import threading

    from geoseg.inference.batches import BatchRing, read_batches

    grid = make_grid(96 * 8 + 32, 96 * 3 + 32, 128, "32px")  # 8 columns, 3 rows of chips
    readers: dict[int, set[str]] = {}

    def read_into(ds, chip, out):
        readers.setdefault(chip.col, set()).add(threading.current_thread().name)
        out[...] = chip.row * 100 + chip.col
        return np.ones(out.shape[1:], bool)

    ring = BatchRing(5, 4, 1, 128)
    opener = lambda: open(__file__)  # noqa: E731 - a handle per thread, closed at the end
    batches = read_batches(iter(grid), opener, read_into, lambda *a: None, ring, workers=2, columns=range(8))
    seen = [(c.row, c.col, float(b.data[i, 0, 0, 0])) for b in batches for i, c in enumerate(b.chips)]
    assert [(r, c) for r, c, _ in seen] == [(c.row, c.col) for c in grid]
    assert all(v == r * 100 + c for r, c, v in seen)
    assert all(len(names) == 1 for names in readers.values())  # a column is always read by the same thread
    left, right = set.union(*(readers[c] for c in range(4))), set.union(*(readers[c] for c in range(4, 8)))
    assert len(left) == len(right) == 1 and left != right


def _plain_average(grid, chips, probs, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every chip's probabilities times its weights, summed in chip order, divided by the weights (0 where none)."""
    acc, wsum = np.zeros((k, grid.height, grid.width), np.float32), np.zeros((grid.height, grid.width), np.float32)
    for c in chips:
        (ry, rx), w = c.inside, chip_weights(grid, c)
        acc[:, c.y0 : c.y1, c.x0 : c.x1] += probs[c][:, ry, rx] * w
        wsum[c.y0 : c.y1, c.x0 : c.x1] += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(wsum > 0, acc / wsum, 0), wsum


@pytest.mark.parametrize(
    ("width", "height", "chip", "overlap", "block"),
    [(67, 45, 32, "24px", None), (300, 170, 64, "16px", (40, 200)), (700, 520, 256, "64px", None), (129, 97, 32, 0, None)],
)
def test_stitched_rows_equal_a_plain_weighted_average_bit_for_bit(width, height, chip, overlap, block) -> None:
    """The stitcher copies where one chip counts, writes weighted values where a chip is the first to touch and
    adds them only where earlier chips did, in a ring of rows: the rows must still be exactly a plain per-pixel
    weighted sum in chip order divided by the weights, with chips skipped, blocks, and chips reaching past the scene
    (mirrored edges)."""
    rng = np.random.default_rng(width)
    grid = make_grid(width, height, chip, overlap, edges="mirror")
    x0, x1 = block or (0, width)
    chips = [c for c in grid.chips_in_columns(x0, x1) if rng.random() > 0.15]  # some chips skipped (nodata)
    probs = {c: rng.random((3, chip, chip)).astype(np.float32) for c in chips}
    expected, wsum = _plain_average(grid, chips, probs, 3)
    expected = expected[:, :, x0:x1]
    got, weight = np.full_like(expected, np.nan), np.zeros_like(expected[0])

    def sink(y0, y1, p, w):
        got[:, y0:y1], weight[y0:y1] = p, w

    stitcher = Stitcher(grid, x0, x1, 3, sink)
    for c in chips:
        stitcher.add(c, probs[c])
    stitcher.finish()
    assert np.array_equal(weight, wsum[:, x0:x1])
    assert np.array_equal(got, expected)


def test_stitching_small_random_grids_equals_a_plain_weighted_average_bit_for_bit() -> None:
    """Where a chip is the first to touch pixels its values are written, not added: on grids where parts start
    right at an earlier chip's reach (1-2 px overlaps, scenes smaller than a chip, snapped last chips, skipped
    rows and columns, column bands) numpy's and torch's stitchers must still give the plain average exactly."""
    rng = np.random.default_rng(7)
    for _ in range(150):
        chip = int(rng.choice([8, 16, 17]))
        overlap = f"{int(rng.integers(0, chip))}px"
        width, height = (int(v) for v in rng.integers(1, 4 * chip, 2))
        grid = make_grid(width, height, chip, overlap, edges=str(rng.choice(["snap", "mirror"])))
        x0 = int(rng.integers(0, width))
        x1 = int(rng.integers(x0 + 1, width + 1))
        skip_row, skip_col = int(rng.integers(-1, grid.rows)), int(rng.integers(-1, grid.cols))
        chips = [c for c in grid.chips_in_columns(x0, x1) if c.row != skip_row and c.col != skip_col and rng.random() > 0.1]
        probs = {c: rng.random((2, chip, chip)).astype(np.float32) for c in chips}
        expected, wsum = _plain_average(grid, chips, probs, 2)
        for make in (Stitcher, functools.partial(TorchStitcher, device="cpu")):
            got, weight = np.full((2, height, x1 - x0), np.nan, np.float32), np.zeros((height, x1 - x0), np.float32)

            def sink(y0, y1, p, w, got=got, weight=weight):
                got[:, y0:y1], weight[y0:y1] = np.asarray(p), np.asarray(w)

            stitcher = make(grid, x0, x1, 2, sink)
            for c in chips:
                stitcher.add(c, probs[c] if make is Stitcher else torch.from_numpy(probs[c]))
            stitcher.finish()
            case = (chip, overlap, width, height, x0, x1, make)
            assert np.array_equal(weight, wsum[:, x0:x1]), case
            assert np.array_equal(got, expected[:, :, x0:x1]), case


def test_closing_a_serial_thread_on_an_error_never_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C or SIGTERM landing inside a queue operation can leave the queue's lock held: closing on that error
    drops what is queued, does not touch the queue, and waits a bounded time, so predict always ends."""
    import time

    from geoseg.core import threads

    monkeypatch.setattr(threads, "STOP_WAIT_S", 0.5)
    ran: list[int] = []
    serial = threads.Serial("test-serial", depth=1)
    serial.submit(time.sleep, 0.2)
    serial.submit(ran.append, 1)  # still queued when the error comes: dropped
    serial.q.mutex.acquire()  # what an interrupt inside the caller's put can leave behind
    started = time.monotonic()
    serial.close(raise_error=False)
    assert time.monotonic() - started < 3
    serial.q.mutex.release()
    serial.thread.join(3)
    assert not serial.thread.is_alive() and ran == []
