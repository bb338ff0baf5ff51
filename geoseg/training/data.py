"""Training data read straight from scenes and labels: index, spatial split, normalization, samples.

Each scene is read once in blocks to count labeled pixels per class and band
statistics per *cell* (a square of ``stride`` pixels). Chips lie on the
stride lattice; the spatial split assigns whole *blocks* to validation and
keeps training chips at least ``gap`` pixels away from them, so validation
pixels never leak into training through neighbouring pixels. Blocks lie on
the ground (the first scene's grid extended over every scene), so scenes of
the same area (two dates) hold out the same ground. Normalization
statistics come from the training area only. A chip reaching past a scene's
edge sees the scene mirrored there, as prediction's edge chips do; its labels
outside the scene are 255 (ignored).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rasterio.windows import Window

from geoseg.core.classes import IGNORE_INDEX
from geoseg.core.errors import InputError
from geoseg.core.grid import north_up, north_up_flips
from geoseg.core.options import Progress
from geoseg.training.augment import augment

__all__ = ["SceneData", "Split", "index_scene", "make_split", "band_stats", "band_percentiles", "augment", "Sample"]

_BLOCK_CELLS = 16


@dataclass
class SceneData:
    """One scene with its labels and per-cell statistics (cells of ``stride`` pixels)."""

    image: str
    ds: Any
    labels: Any
    indexes: list[int]
    stride: int
    class_counts: np.ndarray  # (cy, cx, K) labeled pixels per class
    band_sum: np.ndarray  # (cy, cx, C)
    band_sq: np.ndarray  # (cy, cx, C)
    valid_count: np.ndarray  # (cy, cx)

    @property
    def width(self) -> int:
        """Width of the scene in pixels."""
        return self.ds.width

    @property
    def height(self) -> int:
        """Height of the scene in pixels."""
        return self.ds.height

    def read(self, window: Window, pad: str = "reflect") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw bands (float32, C x h x w), validity and class ids (uint8, unlabeled, invalid and outside = 255).

        A window reaching past the scene gets the scene mirrored there
        (``pad="reflect"``, as prediction reads its edge chips; ``"zero"``:
        zeros, invalid); its labels outside the scene are always 255. In the
        file's orientation: :func:`iter_samples` turns a south-up scene's
        chips north up for the model.
        """
        from geoseg.io.raster import read_window, window_inside

        data, valid = read_window(self.ds, window, self.indexes, pad=pad)
        labels = self.labels.read(window)
        labels[~valid] = IGNORE_INDEX
        rows, cols = window_inside(window, self.width, self.height)
        if (rows.stop - rows.start, cols.stop - cols.start) != labels.shape:
            inside = np.zeros(labels.shape, dtype=bool)
            inside[rows, cols] = True
            labels[~inside] = IGNORE_INDEX
        return data, valid, labels

    def close(self) -> None:
        """Close the scene and its labels."""
        self.labels.close()
        self.ds.close()


def index_scene(
    image: str, labels: Any, indexes: list[int], num_classes: int, stride: int, progress: Progress | None = None
) -> SceneData:
    """Open ``image`` and count labels and band statistics per cell (one pass in blocks).

    Example:
        >>> labels = open_labels("labels.gpkg", grid, "fclass", label_map)  # doctest: +SKIP
        >>> scene = index_scene("scene.tif", labels, [1, 2, 3], num_classes=4, stride=64)  # doctest: +SKIP
        >>> scene.class_counts.shape  # (cells down, cells across, classes)  # doctest: +SKIP
        (16, 16, 4)
    """
    from geoseg.io.raster import open_scene

    ds = open_scene(image)
    cy, cx = math.ceil(ds.height / stride), math.ceil(ds.width / stride)
    counts = np.zeros((cy, cx, num_classes), dtype=np.int64)
    bsum = np.zeros((cy, cx, len(indexes)), dtype=np.float64)
    bsq = np.zeros_like(bsum)
    vcount = np.zeros((cy, cx), dtype=np.int64)
    scene = SceneData(image, ds, labels, indexes, stride, counts, bsum, bsq, vcount)
    step = _BLOCK_CELLS
    blocks = [(r, c) for r in range(0, cy, step) for c in range(0, cx, step)]
    for n, (r, c) in enumerate(blocks):
        nr, nc = min(step, cy - r), min(step, cx - c)
        window = Window(c * stride, r * stride, nc * stride, nr * stride)
        data, valid, lab = scene.read(window, pad="zero")  # statistics of the pixels inside only
        cell = (np.arange(nr * stride)[:, None] // stride) * nc + np.arange(nc * stride)[None, :] // stride
        keep = lab != IGNORE_INDEX
        flat = np.bincount(cell[keep] * num_classes + lab[keep], minlength=nr * nc * num_classes)
        counts[r : r + nr, c : c + nc] = flat.reshape(nr, nc, num_classes)
        vcount[r : r + nr, c : c + nc] = np.bincount(cell[valid], minlength=nr * nc).reshape(nr, nc)
        for b in range(len(indexes)):
            values = data[b][valid].astype(np.float64)
            bsum[r : r + nr, c : c + nc, b] = np.bincount(cell[valid], values, minlength=nr * nc).reshape(nr, nc)
            bsq[r : r + nr, c : c + nc, b] = np.bincount(cell[valid], values * values, minlength=nr * nc).reshape(nr, nc)
        if progress:
            progress("index", n + 1, len(blocks))
    return scene


def _window_sums(cells: np.ndarray, n: int) -> np.ndarray:
    """Sum of every ``n x n`` square of cells, indexed by its top-left cell (integral image)."""
    ii = np.zeros((cells.shape[0] + 1, cells.shape[1] + 1), dtype=np.int64)
    ii[1:, 1:] = cells.cumsum(0).cumsum(1)
    return ii[n:, n:] - ii[:-n, n:] - ii[n:, :-n] + ii[:-n, :-n]


@dataclass
class Sample:
    """A chip window of a scene (``scene`` indexes the list of :class:`SceneData`)."""

    scene: int
    window: Window
    score: Window | None = None  # pixels scored in validation, relative to the window


@dataclass
class Split:
    """Training chips, validation chips and the cells of each role per scene."""

    train: list[Sample] = field(default_factory=list)
    val: list[Sample] = field(default_factory=list)
    val_cells: list[np.ndarray] = field(default_factory=list)
    train_cells: list[np.ndarray] = field(default_factory=list)


def _choose_val_blocks(labeled: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    chosen = np.zeros(labeled.shape, dtype=bool)
    total = labeled.sum()
    if fraction <= 0 or total == 0:
        return chosen
    candidates = np.flatnonzero(labeled.ravel() > 0)
    rng.shuffle(candidates)
    taken = 0
    for idx in candidates:
        if taken >= fraction * total:
            break
        if len(candidates) > 1 and chosen.sum() == len(candidates) - 1:
            break  # keep at least one labeled block for training
        chosen.flat[idx] = True
        taken += labeled.flat[idx]
    return chosen


def _cell_blocks(scene: SceneData, first: SceneData, block: int) -> np.ndarray:
    """Ground blocks of every cell: those at the corners of its bounding box on ``first``'s grid, then the one of its
    centre; shape ``(cy, cx, 5, 2)`` of ``(row, col)``. Blocks are squares of ``block`` pixels of ``first``'s grid,
    extended over the ground; a scene in another CRS is transformed into ``first``'s."""
    from rasterio.warp import transform

    s = scene.stride
    cy, cx = scene.valid_count.shape
    offsets = np.array([1e-3, s / 2, s - 1e-3])  # pixels: a corner a hair inside, so a cell on a block's edge is not in two
    cols, rows = np.meshgrid((np.arange(cx)[:, None] * s + offsets).ravel(), (np.arange(cy)[:, None] * s + offsets).ravel())
    if scene is not first:
        xs, ys = scene.ds.transform * (cols.ravel(), rows.ravel())
        src, dst = scene.ds.crs, first.ds.crs
        if src is not None and dst is not None and src != dst:
            xs, ys = (np.asarray(v) for v in transform(src, dst, xs, ys))
        cols, rows = (np.asarray(v).reshape(cols.shape) for v in ~first.ds.transform * (xs, ys))
    points = np.stack([rows, cols], axis=-1).reshape(cy, 3, cx, 3, 2).transpose(0, 2, 1, 3, 4).reshape(cy, cx, 9, 2)
    points = np.where(np.isfinite(points), points, -1e15)  # outside the first scene's CRS: far away
    low = np.floor(points[:, :, (0, 2, 6, 8)].min(2) / block).astype(np.int64)  # the corners' bounding box
    high = np.floor(points[:, :, (0, 2, 6, 8)].max(2) / block).astype(np.int64)
    centre = np.floor(points[:, :, 4] / block).astype(np.int64)
    corners = [np.stack([r[..., 0], c[..., 1]], -1) for r in (low, high) for c in (low, high)]
    return np.stack([*corners, centre], axis=2)


def _ground_split(
    scenes: Sequence[SceneData], block: int, val_fraction: float, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per scene: its validation cells (wholly in held-out ground blocks) and the cells reaching into one.

    The held-out blocks are chosen once for all scenes, by the labeled pixels of every scene whose cell centres
    lie in them, so scenes of the same ground (two dates) hold out the same ground.
    """
    keys = [_cell_blocks(scene, scenes[0], block) for scene in scenes]
    _, inverse = np.unique(np.concatenate([k.reshape(-1, 2) for k in keys]), axis=0, return_inverse=True)
    ends = np.cumsum([0] + [k.size // 2 for k in keys])  # a number per block, in row-major order of the blocks
    codes = [inverse.ravel()[a:b].reshape(k.shape[:3]) for a, b, k in zip(ends[:-1], ends[1:], keys)]
    centres = np.concatenate([c[:, :, 4].ravel() for c in codes])
    labeled = np.concatenate([scene.class_counts.sum(-1).ravel() for scene in scenes])
    blocks, inverse = np.unique(centres, return_inverse=True)
    per_block = np.bincount(inverse, weights=labeled, minlength=len(blocks)).astype(np.int64)
    held = blocks[_choose_val_blocks(per_block, val_fraction, rng)]
    cells: list[tuple[np.ndarray, np.ndarray]] = []
    for c in codes:
        inside = np.isin(c[:, :, :4], held)  # the blocks a cell reaches into
        cells.append((np.asarray(inside.all(-1)), np.asarray(inside.any(-1))))
    return cells


def _rectangles(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """``(row, col, height, width)`` rectangles that cover the true cells of ``mask`` once each (row-major, greedy)."""
    left = mask.copy()
    found = []
    for r, c in zip(*np.nonzero(mask)):
        if not left[r, c]:
            continue
        w = 1
        while c + w < mask.shape[1] and left[r, c + w]:
            w += 1
        h = 1
        while r + h < mask.shape[0] and left[r + h, c : c + w].all():
            h += 1
        left[r : r + h, c : c + w] = False
        found.append((int(r), int(c), h, w))
    return found


def _val_samples(s: int, scene: SceneData, val_cells: np.ndarray, chip: int, block: int) -> list[Sample]:
    """Validation chips scoring exactly ``val_cells``: per block of the scene's own grid, its held-out rectangles cut
    into chips, each chip centred on its scored part so small parts keep context around them."""
    stride, bc = scene.stride, block // scene.stride
    samples = []
    for by, bx in zip(*np.nonzero(_block_any(val_cells, bc))):
        part = val_cells[by * bc : (by + 1) * bc, bx * bc : (bx + 1) * bc]
        for r, c, h, w in _rectangles(part):
            x0, y0 = (int(bx) * bc + c) * stride, (int(by) * bc + r) * stride
            bw, bh = min(w * stride, scene.width - x0), min(h * stride, scene.height - y0)
            for oy in range(0, bh, chip):
                for ox in range(0, bw, chip):
                    sw, sh = min(chip, bw - ox), min(chip, bh - oy)
                    wx, wy = x0 + ox - (chip - sw) // 2, y0 + oy - (chip - sh) // 2
                    samples.append(Sample(s, Window(wx, wy, chip, chip), Window(x0 + ox - wx, y0 + oy - wy, sw, sh)))
    return samples


def _block_any(cells: np.ndarray, bc: int) -> np.ndarray:
    """Whether each block of ``bc`` x ``bc`` cells holds a true cell."""
    by, bx = math.ceil(cells.shape[0] / bc), math.ceil(cells.shape[1] / bc)
    padded = np.zeros((by * bc, bx * bc), dtype=bool)
    padded[: cells.shape[0], : cells.shape[1]] = cells
    return np.asarray(padded.reshape(by, bc, bx, bc).any((1, 3)))


def make_split(
    scenes: Sequence[SceneData], chip: int, block: int, gap: int, val_fraction: float, min_labeled: float, seed: int
) -> Split:
    """Spatial split by blocks on the ground: validation blocks, and training chips at least ``gap`` px away from them.

    Blocks are squares of ``block`` pixels of the first scene's grid (from its top-left corner) extended over the
    ground, the same for every scene (another CRS is transformed), so scenes of the same ground (two dates) hold out
    the same blocks: a cell of a scene is scored where it lies wholly in a held-out block, and no training chip comes
    within ``gap`` px of a cell that touches one.

    Example:
        >>> split = make_split(scenes, chip=256, block=256, gap=64, val_fraction=0.2, min_labeled=0.05, seed=0)  # doctest: +SKIP
        >>> len(split.train), len(split.val)  # doctest: +SKIP
        (412, 9)
    """
    from scipy.ndimage import binary_dilation

    split = Split()
    if not scenes:
        return split
    held = _ground_split(scenes, block, val_fraction, np.random.default_rng(seed))
    for s, (scene, (val_cells, touched)) in enumerate(zip(scenes, held)):
        stride = scene.stride
        labeled = scene.class_counts.sum(-1)
        g = math.ceil(gap / stride)
        banned = binary_dilation(touched, np.ones((2 * g + 1, 2 * g + 1), bool)) if g else touched
        split.val_cells.append(val_cells)
        split.train_cells.append(~banned)
        n = max(1, chip // stride)
        if labeled.shape[0] >= n and labeled.shape[1] >= n:
            lab_sum = _window_sums(labeled, n)
            ban_sum = _window_sums(banned.astype(np.int64), n)
            ok = (ban_sum == 0) & (lab_sum >= max(1, min_labeled * chip * chip))
            for cy, cx in zip(*np.nonzero(ok)):
                split.train.append(Sample(s, Window(int(cx) * stride, int(cy) * stride, chip, chip)))
        elif labeled.sum() and not banned.any():
            split.train.append(Sample(s, Window(0, 0, chip, chip)))
        split.val.extend(_val_samples(s, scene, val_cells, chip, block))
    return split


def band_stats(scenes: Sequence[SceneData], cells: Sequence[np.ndarray]) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation over the valid pixels of the given cells.

    Example:
        >>> mean, std = band_stats(scenes, split.train_cells)  # doctest: +SKIP
    """
    total = sum(float(sc.valid_count[c].sum()) for sc, c in zip(scenes, cells))
    if total == 0:
        raise InputError("the training area has no valid pixels: check the scenes' nodata and the labels")
    s = sum(sc.band_sum[c].sum(0) for sc, c in zip(scenes, cells))
    q = sum(sc.band_sq[c].sum(0) for sc, c in zip(scenes, cells))
    mean = s / total
    std = np.sqrt(np.maximum(q / total - mean * mean, 0.0))
    std = np.where(std > 1e-6, std, 1.0)
    return [float(v) for v in mean], [float(v) for v in std]


def band_percentiles(
    scenes: Sequence[SceneData], samples: Sequence[Sample], percentiles: Sequence[int], chips: int = 64, step: int = 4
) -> tuple[dict[str, list[float]], int]:
    """Per-band percentiles (keys ``p1``, ...) of the valid pixels of up to ``chips`` training chips, every ``step``-th
    pixel across and down (spread evenly over ``samples``), and the number of pixels they come from.

    Example:
        >>> values, pixels = band_percentiles(scenes, split.train, (1, 50, 99))  # doctest: +SKIP
        >>> values["p50"]  # doctest: +SKIP
        [1102.0, 1305.0, 2210.0]
    """
    picked = [samples[int(i)] for i in np.unique(np.linspace(0, len(samples) - 1, min(chips, len(samples))).round())]
    parts = []
    for sample in picked:
        data, valid, _ = scenes[sample.scene].read(sample.window, pad="zero")  # pixels inside the scene only
        parts.append(data[:, ::step, ::step][:, valid[::step, ::step]])
    pixels = np.concatenate(parts, axis=1) if parts else np.zeros((0, 0))
    if not pixels.size:
        return {}, 0
    values = np.percentile(pixels.astype(np.float64), list(percentiles), axis=1)
    return {f"p{q}": [round(float(v), 4) for v in row] for q, row in zip(percentiles, values)}, int(pixels.shape[1])


def class_counts(scenes: Sequence[SceneData], cells: Sequence[np.ndarray]) -> np.ndarray:
    """Labeled pixels per class over the given cells.

    Example:
        >>> class_counts(scenes, split.train_cells)  # doctest: +SKIP
        array([51200, 20480, 4096])
    """
    return sum(sc.class_counts[c].sum(0) for sc, c in zip(scenes, cells))


def iter_samples(
    scenes: Sequence[SceneData],
    samples: Sequence[Sample],
    normalize: Callable[[np.ndarray], np.ndarray],
    batch_size: int,
    rng: np.random.Generator | None = None,
    aug: dict[str, Any] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, list[Sample]]]:
    """Batches ``(data (B,C,S,S) float32, labels (B,S,S) uint8, samples)``; augmented when ``rng`` is given. Chips of
    a south-up (or east-to-west) scene are turned north up, as prediction shows them to the model.

    Example:
        >>> for data, labels, chips in iter_samples(scenes, split.val, model.normalize, 8):  # doctest: +SKIP
        ...     logits = model(torch.from_numpy(data))
    """
    batch: list[tuple[np.ndarray, np.ndarray, Sample]] = []
    for sample in samples:
        data, valid, labels = scenes[sample.scene].read(sample.window)
        data = normalize(data)
        if not valid.all():
            data[:, ~valid] = 0  # as in prediction: invalid pixels at the band mean
        if sample.score is not None:
            keep = np.full(labels.shape, IGNORE_INDEX, dtype=np.uint8)
            sw = sample.score
            ys = slice(int(sw.row_off), int(sw.row_off + sw.height))
            xs = slice(int(sw.col_off), int(sw.col_off + sw.width))
            keep[ys, xs] = labels[ys, xs]
            labels = keep
        # a south-up (or east-to-west) scene's chip north up, as prediction shows its chips to the model
        data, labels = north_up(north_up_flips(scenes[sample.scene].ds.transform), data, labels)
        if rng is not None and aug:
            data, labels = augment(data, labels, rng, **aug)
        batch.append((data, labels, sample))
        if len(batch) == batch_size:
            yield _stack(batch)
            batch = []
    if batch:
        yield _stack(batch)


def _stack(batch: list) -> tuple[np.ndarray, np.ndarray, list[Sample]]:
    return np.stack([b[0] for b in batch]), np.stack([b[1] for b in batch]), [b[2] for b in batch]
