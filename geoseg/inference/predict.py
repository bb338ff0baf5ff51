"""``geoseg.predict``: a scene and a model in, a stitched class map (and confidence) out.

The steps, each in its own module: checks (:mod:`geoseg.inference.checks`),
the backend (:mod:`geoseg.inference.backends`), the chip loop and stitch
(:mod:`geoseg.inference.loop`), joining blocks predicted apart
(:mod:`geoseg.inference.blocks`), scenes read at the model's pixel size
(:mod:`geoseg.inference.regrid`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from affine import Affine

from geoseg.core.bands import select_bands
from geoseg.core.errors import BandMismatchError, InputError
from geoseg.core.grid import make_grid, north_up_flips, north_up_grid, split_columns
from geoseg.core.options import BLOCK_WIDTH, PredictOptions, Progress
from geoseg.inference.backends import Tuning, check_backend, choose_batch, make_runner
from geoseg.inference.blocks import assemble_blocks
from geoseg.inference.checks import check_columns, check_outputs, check_pixel_size, warn, warn_all_nodata
from geoseg.inference.chips import ChipSelection, read_aoi
from geoseg.inference.loop import ChipLoop
from geoseg.inference.regrid import GRID_PROBABILITIES, PredictResult, grid_record, model_span, to_scene_grid
from geoseg.io.classmap import ClassMapWriter
from geoseg.io.paths import check_input_file
from geoseg.io.raster import chip_cache_mb, gdal_env, gdal_path, open_scene
from geoseg.io.resample import open_resampled
from geoseg.io.sources import CUT_TAG
from geoseg.model.onnx import OnnxModel

__all__ = ["BLOCK_WIDTH", "PredictResult", "Progress", "assemble_blocks", "open_model", "predict"]


SCENE_CACHE_MB = 64
"""GDAL's block cache (MB) while predict opens, checks and rewrites outputs; the chip loop sizes its own to a row of
chips (:func:`geoseg.io.raster.chip_cache_mb`)."""


def open_model(model: object, backend: str = "auto", device: str = "auto") -> Any:
    """A :class:`geoseg.Model` or an :class:`~geoseg.model.onnx.OnnxModel` from a model object, path or ``default``.

    Example:
        >>> open_model("default").card.num_classes  # doctest: +SKIP
        8
    """
    from geoseg.model.onnx import load_onnx, onnx_device

    check_backend(None, backend, device)  # before a checkpoint imports torch: the name and a GPU-only backend on cpu
    if isinstance(model, (str, os.PathLike)) and str(model) != "default":
        check_input_file(model, "model file", "give a .pt checkpoint, an .onnx file or default")  # a FIFO never hangs
    if not isinstance(model, (str, os.PathLike)):
        net = model
    elif str(model).lower().endswith(".onnx"):
        # torch is not imported for ONNX models; --backend tensorrt opens its own session, this one only reads the card
        net = load_onnx(model, "cpu" if backend == "tensorrt" else onnx_device(device))
    else:
        from geoseg.model.factory import load_model

        net = load_model(model)
    check_backend(net, backend, device)
    return net


def predict(
    image: str | os.PathLike[str],
    model: object,
    output: str | os.PathLike[str],
    options: PredictOptions | None = None,
    *,
    confidence: str | os.PathLike[str] | None = None,
    probabilities: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    columns: tuple[int, int] | None = None,
    clouds: str | os.PathLike[str] | None = None,
    **option_values: Any,
) -> PredictResult:
    """Predict a scene chip by chip and stitch a seamless class map on the scene's grid.

    ``model`` is a :class:`geoseg.Model`, a checkpoint path, an exported
    ``.onnx`` file or ``"default"``. ``options`` (a :class:`PredictOptions`)
    or its fields as keywords say how. ``backend`` ``auto`` is onnxruntime
    for ``.onnx`` files, and on CPU for scenes of at least
    :data:`~geoseg.inference.backends.AUTO_ONNX_CHIPS` chips when onnxruntime
    is installed (BENCHMARKS.md); ``batch_size`` defaults to 2 on the CPU and
    on a GPU to what half its free memory holds (1 to 64) with torch, 8 with onnxruntime.

    ``output`` receives uint8 class ids 0..K-1 (255 = nodata or outside
    ``aoi``); ``confidence`` the winning probability in percent;
    ``probabilities`` one band per class in percent. Nothing is written
    unless the whole scene succeeds. Scenes wider than ``block_width`` are
    stitched in vertical blocks. ``columns=(x0, x1)`` predicts only those
    columns of the output grid, with every chip that reaches them, into
    outputs as wide as the block: blocks predicted apart (on different Dask
    workers) hold the same pixels as the whole scene.

    A scene whose pixel size differs from the model card's by more than 25%
    is read at the model's pixel size (``resample="auto"``; one warning line)
    and its outputs written on the scene's grid (probabilities brought back
    bilinearly before the argmax) or, with ``output_grid="model"``, on the
    model's; ``result.grid`` says what was done.

    ``mask_clouds=True`` makes clouds and shadows nodata in every output
    (their mask is kept at ``clouds`` when given; ``result.clouds`` records
    it, its ``path`` None when the mask was not kept).

    Example:
        >>> r = geoseg.predict("scene.tif", "default", "/tmp/doc_classes.tif", overwrite=True)  # doctest: +SKIP
    """
    started = time.perf_counter()
    opts = (options or PredictOptions()).replace(**option_values)
    named = {"classes": output, "confidence": confidence, "probabilities": probabilities}
    outputs = {kind: Path(path) for kind, path in named.items() if path}
    keep = Path(clouds) if clouds and opts.mask_clouds else None
    paths = (image, opts.aoi, model if isinstance(model, (str, os.PathLike)) else None)
    inputs = [p for p in paths if p is not None and p != "default"]
    check_outputs({**outputs, "clouds": keep} if keep else outputs, inputs, overwrite, scene=image)
    net = open_model(model, opts.backend, opts.device)
    result = PredictResult(outputs, 0, 0, 0)
    with gdal_env(cache_mb=SCENE_CACHE_MB), open_scene(image, source_resolution=opts.resolution) as ds:
        _predict_scene(ds, image, net, opts, outputs, columns, progress, result, keep)
    result.seconds["total"] = time.perf_counter() - started
    return result


def _chip_size(net: Any, opts: PredictOptions) -> int:
    from geoseg.model.card import check_chip_size

    chip = int(net.card.chip_size if opts.chip_size is None else opts.chip_size)
    if isinstance(net, OnnxModel) and chip != net.chip_size:
        raise InputError(
            f"--chip-size {chip}: the ONNX model {net.path.name} takes only {net.chip_size} px chips "
            f"(export it again with geoseg export --chip-size {chip})"
        )
    check_chip_size(chip, net.output_stride, "--chip-size")
    return chip


def _predict_scene(
    ds: Any,
    image: str | os.PathLike[str],
    net: Any,
    opts: PredictOptions,
    outputs: dict[str, Path],
    columns: tuple[int, int] | None,
    progress: Progress | None,
    result: PredictResult,
    clouds: Path | None = None,
) -> None:
    """Match the bands of the open scene ``ds``, meet the model's pixel size, predict and commit the outputs."""
    card = net.card
    cut = ds.tags().get(CUT_TAG)
    if cut:  # logged when the source was resolved: kept for run.json
        result.warnings.append(cut)
    if opts.resolution is not None and not getattr(ds, "path", None):  # one raster file: not a multi-file source
        fix = f"resample it first (e.g. gdalwarp -tr {opts.resolution:g} {opts.resolution:g} -r average) if you meant to"
        warn(result.warnings, f"{ds.name}: --resolution applies to multi-file sources; this raster keeps its grid: {fix}")
    scene = _Scene(ds, gdal_path(ds, image), _chip_size(net, opts), _bands(ds, card, opts, result))
    polygons, union = read_aoi(opts.aoi, ds, result.warnings) if opts.aoi is not None else (None, None)
    scene.polygons, scene.union = polygons, union
    if not check_pixel_size(ds, card.pixel_size, result.warnings, opts.resample, opts.output_grid):
        result.grid = grid_record(ds, card.pixel_size, ds, opts.output_grid)
        with _cloud_mask(scene, opts, card, clouds, progress, result):
            _predict_on(scene, net, opts, outputs, columns, progress, result)
        return
    path, model_ds = open_resampled(ds, image, card.pixel_size)
    with model_ds:
        result.grid = grid_record(ds, card.pixel_size, model_ds, opts.output_grid)
        on_model = _Scene(model_ds, path, scene.chip, scene.indexes, polygons, union)
        if opts.output_grid == "model":  # the cloud mask lies on the outputs' grid
            with _cloud_mask(on_model, opts, card, clouds, progress, result):
                _predict_on(on_model, net, opts, outputs, columns, progress, result)
        else:
            with _cloud_mask(scene, opts, card, clouds, progress, result):
                _predict_via_model_grid(scene, on_model, net, opts, outputs, columns, progress, result)


@contextlib.contextmanager
def _cloud_mask(
    scene: _Scene,
    opts: PredictOptions,
    card: Any,
    keep: Path | None,
    progress: Progress | None,
    result: PredictResult,
) -> Iterator[None]:
    """With ``mask_clouds``: mask ``scene``'s clouds and shadows (at ``keep``, else in a temporary folder) and set
    ``scene.exclude`` while the block runs."""
    if not opts.mask_clouds:
        yield
        return
    from geoseg.inference.clouds import CloudExclusion, write_cloud_mask

    with contextlib.ExitStack() as stack:
        target = (
            keep
            or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="geoseg-clouds-", ignore_cleanup_errors=True)))
            / "clouds.tif"
        )
        bands = _cloud_band_names(scene, card)
        made = write_cloud_mask(
            scene.path, target, bands=bands, device=opts.device, overwrite=True, style=keep is not None, progress=progress
        )
        result.clouds = made.record(kept=keep is not None)
        for line in made.warnings:
            warn(result.warnings, line)
        if made.valid_pixels and made.shares["cloud"] + made.shares["shadow"] >= 100:
            warn(result.warnings, f"{scene.ds.name}: every pixel is cloud or cloud shadow: the outputs are all nodata")
        scene.exclude = stack.enter_context(CloudExclusion(target, buffer=CLOUD_BUFFER, like=scene.ds))
        try:
            yield
        finally:
            scene.exclude = None


def _cloud_band_names(scene: _Scene, card: Any) -> list[int] | None:
    """The cloud model's bands of a scene without band names, from the model's band names where the model's bands
    were matched to the scene's in order (None: found by the scene's own names). A scene whose every band the model
    names, without those the cloud model needs, is refused naming what it lacks."""
    from geoseg.inference.clouds import cloud_bands

    if any(scene.ds.descriptions) or not card.bands_are_named:
        return None
    names: list[str | None] = [None] * scene.ds.count
    for index, name in zip(scene.indexes, card.bands):
        names[index - 1] = name
    try:
        return cloud_bands(names, name=f"{scene.ds.name} (its bands named as the model's)")[0]
    except InputError:
        if all(names):
            raise
        return None


CLOUD_BUFFER = 0
"""Pixels the cloud and shadow mask is grown by before it makes outputs nodata (0: exactly clouds.tif's pixels, so
its shares are what was masked)."""


class _Scene:
    """An open scene (or its view at the model's pixel size): dataset, GDAL path, chip size, bands, area of interest."""

    def __init__(self, ds: Any, path: str, chip: int, indexes: list[int], polygons: Any = None, union: Any = None) -> None:
        self.ds, self.path, self.chip, self.indexes, self.polygons, self.union = ds, path, chip, indexes, polygons, union
        self.exclude: Any = None  # exclude(window) -> pixels that become nodata (a cloud mask), on this grid


def _bands(ds: Any, card: Any, opts: PredictOptions, result: PredictResult) -> list[int]:
    try:
        requested = list(opts.bands) if opts.bands else None
        indexes, note = select_bands(ds.descriptions, card.bands, requested, card.bands_are_named, ds.colorinterp)
    except BandMismatchError as exc:  # name the scene: a batch has many
        raise BandMismatchError(f"{ds.name}: {exc}") from None
    if note:
        warn(result.warnings, f"{ds.name}: {note}")
    return indexes


def _writer(outputs: dict[str, Path], ds: Any, x0: int, x1: int, card: Any, dtype: str = "uint8") -> ClassMapWriter:
    transform = ds.transform * Affine.translation(x0, 0)
    return ClassMapWriter(
        outputs, ds.crs, transform, x1 - x0, ds.height, card.classes, tags={"GEOSEG_MODEL": card.name}, dtype=dtype
    )


def _predict_on(
    scene: _Scene,
    net: Any,
    opts: PredictOptions,
    outputs: dict[str, Path],
    columns: tuple[int, int] | None,
    progress: Progress | None,
    result: PredictResult,
) -> None:
    """Predict on ``scene``'s grid into outputs on that grid and commit them."""
    x0, x1 = check_columns(columns, scene.ds)
    writer = _writer(outputs, scene.ds, x0, x1, net.card)
    try:
        _chip_loop(scene, net, opts, (x0, x1), writer, progress, result)
        if result.chips_predicted == 0 and columns is None:  # a block may be all nodata; its scene is judged whole
            warn_all_nodata(scene.ds.name, result.warnings)
        writer.commit()
    except BaseException:
        writer.abort()
        raise


def _predict_via_model_grid(
    scene: _Scene,
    on_model: _Scene,
    net: Any,
    opts: PredictOptions,
    outputs: dict[str, Path],
    columns: tuple[int, int] | None,
    progress: Progress | None,
    result: PredictResult,
) -> None:
    """Predict on the model's grid into a temporary probability raster, then bring it onto the scene's grid."""
    x0, x1 = check_columns(columns, scene.ds)
    span = model_span(x0, x1, scene.ds.width, on_model.ds.width)
    target = outputs["classes"]
    scratch = _writer(
        {GRID_PROBABILITIES: target},
        on_model.ds,
        *span,
        net.card,
        "uint16",  # never committed: its temporary file
    )
    try:
        _chip_loop(on_model, net, opts, span, scratch, progress, result, mask_pixels=False)  # masked on the scene grid
        if result.chips_predicted == 0 and columns is None:
            warn_all_nodata(scene.ds.name, result.warnings)
        for ds in scratch.ds.values():
            ds.close()
        t = time.perf_counter()
        writer = _writer(outputs, scene.ds, x0, x1, net.card)
        try:
            to_scene_grid(
                scratch.tmp[GRID_PROBABILITIES],
                scene.ds,
                scene.indexes,
                writer,
                (x0, x1),
                scene.polygons,
                opts.block_width,
                scene.exclude,
            )
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        result.seconds["to_scene_grid"] = time.perf_counter() - t
    finally:
        scratch.abort()


def _chip_loop(
    scene: _Scene,
    net: Any,
    opts: PredictOptions,
    span: tuple[int, int],
    writer: ClassMapWriter,
    progress: Progress | None,
    result: PredictResult,
    mask_pixels: bool = True,
) -> None:
    """Lay the grid over ``scene``, choose chips and backend, and run the chip loop over columns ``span``."""
    ds, chip = scene.ds, scene.chip
    overlap = net.card.overlap if opts.overlap is None else opts.overlap
    grid = make_grid(ds.width, ds.height, chip, overlap, ds.transform, edges="mirror")  # edge chips reach past, mirrored
    grid = north_up_grid(grid, north_up_flips(ds.transform))  # a south-up scene's chips on the ground north-up ones cover
    x0, x1 = span
    chips = ChipSelection(grid, x0, x1, scene.union)  # made lazily, block by block
    result.chips_total = chips.count()
    tuning = Tuning(opts.model_precision, opts.compile)
    runner, net = make_runner(net, opts.backend, opts.device, opts.tta, chip, result.chips_total, result.seconds, tuning)
    batch_size = opts.batch_size or choose_batch(runner, len(scene.indexes), chip)
    bands = [ds.descriptions[i - 1] or f"band {i}" for i in scene.indexes]
    result.settings = {"chip_size": chip, "overlap_px": grid.overlap, "batch_size": batch_size, "backend": runner.backend}
    result.settings.update(device=str(runner.device), bands=bands)
    blocks = [(x0 + a, x0 + b) for a, b in split_columns(x1 - x0, opts.block_width)]
    loop = ChipLoop(
        ds,
        scene.path,
        grid,
        scene.indexes,
        net,
        runner,
        writer,
        scene.polygons,
        batch_size,
        progress,
        result,
        chips.work(blocks) if len(blocks) > 1 else result.chips_total,  # the progress's total: seam chips per block
        exclude=scene.exclude,
        mask_pixels=mask_pixels,
    )
    widest = max(b - a for a, b in blocks) + 2 * chip  # chips reach past a block's edges
    with gdal_env(cache_mb=chip_cache_mb(ds, min(widest, ds.width), chip, len(scene.indexes))):
        loop.run(chips, blocks)
