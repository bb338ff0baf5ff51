"""``geoseg.predict``: a scene and a model in, a stitched class map (and confidence) out."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from geoseg.core.bands import select_bands
from geoseg.core.classes import NODATA
from geoseg.core.errors import InputError, RasterError
from geoseg.core.grid import Grid, make_grid, split_columns
from geoseg.core.threads import prefetch
from geoseg.inference.backends import OnnxRunner, TorchRunner, default_batch
from geoseg.inference.batches import iter_batches
from geoseg.inference.stitch import Stitcher
from geoseg.io.classmap import ClassMapWriter
from geoseg.io.paths import check_output
from geoseg.io.raster import gdal_env, open_scene, pixel_size_m, read_window, scene_has_mask
from geoseg.model.device import resolve_device

__all__ = ["PredictResult", "Progress", "predict"]

log = logging.getLogger("geoseg")

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``, called as chips are predicted."""

BLOCK_WIDTH = 16384
"""Scenes wider than this are stitched in vertical blocks (see DESIGN.md, 'Memory and blocks')."""


@dataclass
class PredictResult:
    """What :func:`predict` wrote and how long each part took (seconds)."""

    outputs: dict[str, Path]
    chips_total: int
    chips_predicted: int
    chips_skipped: int
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _warn(result_warnings: list[str], message: str) -> None:
    log.warning(message)
    result_warnings.append(message)


def _check_outputs(outputs: dict[str, Path], inputs: list, overwrite: bool) -> None:
    seen: dict[str, str] = {}
    for kind, path in outputs.items():
        check_output(path, inputs, overwrite)
        key = os.path.normcase(str(Path(path).resolve()))
        if key in seen:
            raise InputError(f"--{seen[key]} and --{kind} name the same file {path}: give different paths")
        seen[key] = kind


def _aoi_filter(aoi: str | os.PathLike, ds, grid: Grid, chips: list) -> tuple[list, list]:
    import shapely

    from geoseg.io.vector import read_polygons

    polygons = read_polygons(aoi, ds.crs)
    union = shapely.union_all(polygons)
    if not union.intersects(shapely.box(*ds.bounds)):
        raise InputError(f"--aoi {aoi} does not overlap the scene {ds.name}: check the file and its CRS")
    boxes = shapely.box(*np.array([c.bounds for c in chips]).T)
    shapely.prepare(union)
    keep = shapely.intersects(union, boxes)
    return [c for c, k in zip(chips, keep) if k], polygons


def predict(
    image: str | os.PathLike,
    model: object,
    output: str | os.PathLike,
    *,
    confidence: str | os.PathLike | None = None,
    probabilities: str | os.PathLike | None = None,
    bands: str | list | None = None,
    chip_size: int | None = None,
    overlap: str | float | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    tta: bool = False,
    aoi: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    block_width: int = BLOCK_WIDTH,
    backend: str = "auto",
    columns: tuple[int, int] | None = None,
) -> PredictResult:
    """Predict a scene chip by chip and stitch a seamless class map on the scene's grid.

    ``model`` is a :class:`geoseg.Model`, a checkpoint path, an exported
    ``.onnx`` file or ``"default"``. ``backend`` is ``torch``, ``onnx``
    (onnxruntime; a checkpoint is exported to ONNX in memory first) or
    ``auto``: onnxruntime for ``.onnx`` files, and on CPU for scenes of at
    least :data:`AUTO_ONNX_CHIPS` chips when onnxruntime is installed (it runs
    the model about 1.36x faster on the project's 2-core CPU, BENCHMARKS.md;
    the export costs about a second).
    ``batch_size`` (chips per model call) defaults to 2 on the CPU, where
    small batches run fastest, and 8 on a GPU.
    ``output`` receives uint8 class ids 0..K-1 (255 = nodata or outside
    ``aoi``); ``confidence`` the winning probability in percent;
    ``probabilities`` one band per class in percent. Nothing is written
    unless the whole scene succeeds. Scenes wider than ``block_width`` are
    stitched in vertical blocks. ``columns=(x0, x1)`` predicts only those
    scene columns, with every chip that reaches them (a halo of the chip
    overlap), into outputs as wide as the block: blocks predicted apart (on
    different Dask workers) hold the same pixels as the whole scene.

    Example:
        >>> import geoseg
        >>> m = geoseg.create_model(bands=10, classes=3)
        >>> r = geoseg.predict("data_samples/brandenburg_s2_512.tif", m, "/tmp/doc_classes.tif",
        ...                    overwrite=True)  # doctest: +SKIP
    """
    from geoseg.model.card import check_chip_size
    from geoseg.model.onnx import OnnxModel

    started = time.perf_counter()
    outputs = {"classes": Path(output)}
    if confidence:
        outputs["confidence"] = Path(confidence)
    if probabilities:
        outputs["probabilities"] = Path(probabilities)
    in_memory = not isinstance(model, (str, os.PathLike))
    inputs = [p for p in (image, aoi, None if in_memory else model) if p is not None and p != "default"]
    _check_outputs(outputs, inputs, overwrite)
    if batch_size is not None and batch_size < 1:
        raise InputError(f"--batch-size {batch_size} must be at least 1")
    if block_width < 256:
        raise InputError(f"--block-width {block_width} must be at least 256 pixels (one tile)")
    if backend not in BACKENDS:
        raise InputError(f"--backend {backend!r} is not known: use {', '.join(BACKENDS)}")
    net = open_model(model, backend, device)
    card = net.card
    chip = int(card.chip_size if chip_size is None else chip_size)
    if isinstance(net, OnnxModel) and chip != net.chip_size:
        raise InputError(
            f"--chip-size {chip}: the ONNX model {net.path.name} takes only {net.chip_size} px chips "
            f"(export it again with geoseg export --chip-size {chip})"
        )
    check_chip_size(chip, net.output_stride, "--chip-size")
    result = PredictResult(outputs, 0, 0, 0)
    with gdal_env(), open_scene(image) as ds:
        indexes, note = select_bands(ds.descriptions, card.bands, bands, card.bands_are_named)
        if note:
            _warn(result.warnings, f"{ds.name}: {note}")
        _check_pixel_size(ds, card.pixel_size, result.warnings)
        grid = make_grid(ds.width, ds.height, chip, card.overlap if overlap is None else overlap, ds.transform)
        chips = list(grid)
        x0, x1 = _check_columns(columns, ds)
        if columns is not None:
            chips = [c for c in chips if c.x0 < x1 and c.x1 > x0]
        polygons = None
        if aoi is not None:
            chips, polygons = _aoi_filter(aoi, ds, grid, chips)
        result.chips_total = len(chips)
        runner, net = _runner(net, backend, device, tta, chip, len(chips), result)
        batch_size = batch_size or default_batch(runner.device)
        writer = ClassMapWriter(
            outputs,
            ds.crs,
            ds.transform * Affine.translation(x0, 0),
            x1 - x0,
            ds.height,
            card.classes,
            tags={"GEOSEG_MODEL": card.name},
        )
        try:
            blocks = [(x0 + a, x0 + b) for a, b in split_columns(x1 - x0, block_width)]
            _run(
                ds,
                image,
                grid,
                chips,
                indexes,
                net,
                runner,
                writer,
                polygons,
                batch_size,
                blocks,
                progress,
                result,
                block_mode=columns is not None,
            )
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    result.seconds["total"] = time.perf_counter() - started
    return result


def assemble_blocks(
    image: str | os.PathLike,
    blocks: list[tuple[int, PredictResult]],
    outputs: dict[str, Path],
    card: Any,
    rows: int = 1024,
) -> PredictResult:
    """Join blocks predicted apart with ``predict(columns=...)`` into the scene's outputs.

    ``blocks`` are ``(x0, result)`` pairs covering the scene's columns;
    ``outputs`` maps ``classes`` / ``confidence`` to the scene files, written
    with the same writer as :func:`predict` (same tiling, colours, tags, COG),
    so they hold the same pixels as one whole-scene prediction. Reads
    ``rows`` rows of a block at a time.

    Example:
        >>> blocks = [(0, predict("s.tif", m, "b0.tif", columns=(0, 512))),
        ...           (512, predict("s.tif", m, "b1.tif", columns=(512, 900)))]  # doctest: +SKIP
        >>> assemble_blocks("s.tif", blocks, {"classes": Path("classes.tif")}, m.card)  # doctest: +SKIP
    """
    from rasterio.windows import Window

    blocks = sorted(blocks, key=lambda b: b[0])
    result = PredictResult(dict(outputs), 0, 0, 0)
    for _, part in blocks:
        result.chips_total += part.chips_total
        result.chips_predicted += part.chips_predicted
        result.chips_skipped += part.chips_skipped
        for key, value in part.seconds.items():
            result.seconds[key] = result.seconds.get(key, 0.0) + value
        result.warnings.extend(w for w in part.warnings if w not in result.warnings)
    with gdal_env(), open_scene(image) as ds:
        if result.chips_predicted == 0:
            raise RasterError(f"{ds.name}: every chip is nodata or outside the area of interest; nothing to predict")
        writer = ClassMapWriter(
            outputs, ds.crs, ds.transform, ds.width, ds.height, card.classes, tags={"GEOSEG_MODEL": card.name}
        )
        try:
            for x0, part in blocks:
                sources = {kind: open_scene(part.outputs[kind], require_georef=False) for kind in outputs}
                try:
                    width = next(iter(sources.values())).width
                    for y0 in range(0, ds.height, rows):
                        window = Window(0, y0, width, min(rows, ds.height - y0))
                        writer.write_rows(
                            x0,
                            y0,
                            {
                                kind: src.read(window=window)[0] if src.count == 1 else src.read(window=window)
                                for kind, src in sources.items()
                            },
                        )
                finally:
                    for src in sources.values():
                        src.close()
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    return result


BACKENDS = ("auto", "torch", "onnx")
AUTO_ONNX_CHIPS = 64
"""With ``backend="auto"``, checkpoints run through onnxruntime on CPU from this many chips on."""


def open_model(model: object, backend: str = "auto", device: str = "auto"):
    """A :class:`geoseg.Model` or an :class:`~geoseg.model.onnx.OnnxModel` from a model object, path or `default`."""
    from geoseg.model.onnx import OnnxModel, load_onnx, onnx_device

    if not isinstance(model, (str, os.PathLike)):
        net = model
    elif str(model).lower().endswith(".onnx"):
        net = load_onnx(model, onnx_device(device))  # torch is not imported for ONNX models
    else:
        from geoseg.model.factory import load_model

        net = load_model(model)
    if isinstance(net, OnnxModel) and backend == "torch":
        raise InputError(
            f"{net.path.name} is an ONNX model: run it with --backend onnx or auto, or give the .pt "
            "checkpoint for --backend torch"
        )
    return net


def _onnx_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def _runner(net, backend: str, device: str, tta: bool, chip: int, chips: int, result: PredictResult):
    """The runner for ``backend``; a checkpoint bound for onnxruntime is exported to a temporary file first."""
    from geoseg.model.onnx import OnnxModel

    if isinstance(net, OnnxModel):
        return OnnxRunner(net, tta=tta), net
    use_onnx = backend == "onnx" or (
        backend == "auto" and resolve_device(device) == "cpu" and chips >= AUTO_ONNX_CHIPS and _onnx_installed()
    )
    if not use_onnx:
        return TorchRunner(net, device=device, tta=tta), net
    if not _onnx_installed():
        raise InputError("--backend onnx needs onnx and onnxruntime: pip install 'geoseg[onnx]'")
    import tempfile

    from geoseg.model.onnx import export_onnx, load_onnx

    # exported once per model object, chip size, device and weights (their in-place version counters change
    # when they are trained further): a batch of scenes reuses the session
    exports = net.__dict__.setdefault("_onnx_exports", {})
    key = (chip, resolve_device(device), sum(p._version for p in net.parameters()))
    if key not in exports:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="geoseg-onnx-") as tmp:
            path = export_onnx(net, Path(tmp) / "model.onnx", chip_size=chip)
            exports[key] = load_onnx(path, key[1])  # the session holds the graph in memory
        result.seconds["export_onnx"] = time.perf_counter() - started
        log.info("running the model with onnxruntime (exported in %.1f s)", result.seconds["export_onnx"])
    return OnnxRunner(exports[key], tta=tta), exports[key]


def _check_pixel_size(ds, model_size: float | None, warnings: list[str]) -> None:
    if not model_size:
        return
    size = pixel_size_m(ds)
    if abs(size - model_size) > 0.25 * model_size:
        _warn(
            warnings,
            f"{ds.name}: pixel size {size:.3g} m differs from the model's {model_size:.3g} m by "
            f"more than 25%; results may be poor (resample the scene to {model_size:.3g} m)",
        )


class _Radiometry:
    """Compares the first chips' band means with the model's normalization (warns once)."""

    def __init__(self, card, warnings: list[str], name: str) -> None:
        self.card, self.warnings, self.name = card, warnings, name
        self.sums: np.ndarray | None = None
        self.count = 0
        self.done = card.mean is None

    def observe(self, data: np.ndarray, valid: np.ndarray) -> None:
        if self.done or not valid.any():
            return
        sums = data[:, valid].sum(axis=1, dtype=np.float64)
        self.sums = sums if self.sums is None else self.sums + sums
        self.count += int(valid.sum())
        if self.count >= 4 * 256 * 256:
            self.check()

    def check(self) -> None:
        if self.done or not self.count:
            return
        self.done = True
        means = self.sums / self.count
        mean, std = np.asarray(self.card.mean), np.asarray(self.card.std)
        far = np.abs(means - mean) > 3 * std
        if far.any():
            bad = ", ".join(
                f"{b} mean {m:.4g} (model {mu:.4g} ± {s:.3g})"
                for b, m, mu, s, f in zip(self.card.bands, means, mean, std, far)
                if f
            )
            _warn(
                self.warnings,
                f"{self.name}: band statistics far outside the model's normalization: {bad}; "
                "check the bands' order, scaling and units",
            )


def _check_columns(columns: tuple[int, int] | None, ds) -> tuple[int, int]:
    if columns is None:
        return 0, ds.width
    x0, x1 = (int(v) for v in columns)
    if not 0 <= x0 < x1 <= ds.width:
        raise InputError(f"columns {x0}:{x1} are not inside {ds.name} (0:{ds.width}): give 0 <= x0 < x1 <= width")
    return x0, x1


def _run(
    ds, image, grid, chips, indexes, net, runner, writer, polygons, batch_size, blocks, progress, result, block_mode: bool = False
) -> None:
    """Predict and stitch ``chips`` block by block (``blocks``: scene column ranges, written at their offset
    from the first block's left edge)."""
    from rasterio.features import geometry_mask
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    masked = scene_has_mask(ds)
    float_scene = np.dtype(ds.dtypes[0]).kind == "f"
    radiometry = _Radiometry(net.card, result.warnings, ds.name)
    times = {"read_wait": 0.0, "model": 0.0, "stitch": 0.0, "write": 0.0}
    done = 0
    if progress:
        progress("predict", 0, len(chips))

    def make_sink(x0: int, x1: int):
        def sink(y0: int, y1: int, probs: np.ndarray, weight: np.ndarray) -> None:
            t = time.perf_counter()
            window = Window(x0, y0, x1 - x0, y1 - y0)
            valid = weight > 0
            if masked or float_scene:
                valid &= read_window(ds, window, indexes, masked=masked)[1]
            if polygons is not None:
                valid &= geometry_mask(
                    polygons, (y1 - y0, x1 - x0), window_transform(window, ds.transform), invert=True, all_touched=False
                )
            arrays = {"classes": probs.argmax(axis=0).astype(np.uint8)}
            arrays["classes"][~valid] = NODATA
            if "confidence" in writer.ds:
                conf = np.rint(probs.max(axis=0) * 100).astype(np.uint8)
                conf[~valid] = NODATA
                arrays["confidence"] = conf
            if "probabilities" in writer.ds:
                pr = np.rint(probs * 100).astype(np.uint8)
                pr[:, ~valid] = NODATA
                arrays["probabilities"] = pr
            writer.write_rows(x0 - offset, y0, arrays)
            times["write"] += time.perf_counter() - t

        return sink

    # the reader thread has its own handle: GDAL datasets are not shared between threads
    def read_factory():
        reader = open_scene(image)

        def read(chip):
            data, valid = read_window(reader, chip.window, indexes, masked=masked)
            return data, valid

        return reader, read

    offset = blocks[0][0]
    for x0, x1 in blocks:
        block_chips = [c for c in chips if c.x0 < x1 and c.x1 > x0]
        if not block_chips:
            writer.write_rows(
                x0 - offset,
                0,
                {
                    "classes": np.full((ds.height, x1 - x0), NODATA, np.uint8),
                    **({"confidence": np.full((ds.height, x1 - x0), NODATA, np.uint8)} if "confidence" in writer.ds else {}),
                    **(
                        {"probabilities": np.full((net.card.num_classes, ds.height, x1 - x0), NODATA, np.uint8)}
                        if "probabilities" in writer.ds
                        else {}
                    ),
                },
            )
            continue
        stitcher = Stitcher(grid, x0, x1, net.card.num_classes, make_sink(x0, x1))
        reader, read = read_factory()
        try:

            def observed_read(chip, _read=read):
                data, valid = _read(chip)
                radiometry.observe(data, valid)
                return data, valid

            batches = prefetch(iter_batches(block_chips, observed_read, net.normalize, batch_size), depth=2)
            t = time.perf_counter()
            for batch in batches:
                times["read_wait"] += time.perf_counter() - t
                if batch.chips:
                    t = time.perf_counter()
                    probs = runner(batch.data)
                    times["model"] += time.perf_counter() - t
                    t = time.perf_counter()
                    for chip, p in zip(batch.chips, probs):
                        stitcher.add(chip, p)
                    times["stitch"] += time.perf_counter() - t
                result.chips_predicted += len(batch.chips)
                result.chips_skipped += batch.skipped
                done += len(batch.chips) + batch.skipped
                if progress:
                    progress("predict", done, len(chips))
                t = time.perf_counter()
            t = time.perf_counter()
            stitcher.finish()
            times["stitch"] += time.perf_counter() - t
        finally:
            reader.close()
    radiometry.check()
    times["stitch"] -= times["write"]
    result.seconds.update(times)
    if result.chips_predicted == 0 and not block_mode:  # a block may be all nodata; its scene is checked whole
        raise RasterError(f"{ds.name}: every chip is nodata or outside the area of interest; nothing to predict")
