"""Clouds and cloud shadows: a cloud mask on the scene's grid, and the exclusion the chip loop reads from it.

The model is ukis-csmask's (DLR, Apache-2.0; extra ``geoseg[clouds]``): ONNX U-Nets shipped in the package (never
downloaded) for Sentinel-2 and Landsat 5-9, Level-1C or -2A reflectance, on 256 px chips of blue, green, red, nir
(and swir16, swir22 when the scene has them). Chips are read with :func:`read_window` (mirrored past the edge) at
:data:`MODEL_RESOLUTION` m (through :func:`~geoseg.io.resample.open_resampled` when the scene's pixels differ by
more than 10%), run by onnxruntime, blended by the
:class:`~geoseg.inference.stitch.Stitcher`; finished rows are written on the scene's grid at once (memory flat in
the scene's height). :func:`write_cloud_mask` writes ``clouds.tif`` and ``clouds.qml``; :class:`CloudExclusion`
reads ``clouds.tif`` for the chip loop's ``exclude(window)``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window
from scipy.ndimage import binary_dilation

from geoseg.core import threads
from geoseg.core.bands import match_by_common_name, parse_requested
from geoseg.core.classes import NODATA, ClassInfo
from geoseg.core.errors import BandMismatchError, InputError, OptionError
from geoseg.core.grid import Chip, make_grid, north_up, north_up_flips, north_up_grid, split_columns
from geoseg.core.options import BLOCK_WIDTH, Progress
from geoseg.inference.cloud_scaling import Scaling, guess_scaling
from geoseg.inference.stitch import Stitcher
from geoseg.io.classmap import ClassMapWriter
from geoseg.io.outputs import write_text_atomic
from geoseg.io.paths import check_output
from geoseg.io.pixels import pixel_size_m, pixel_sizes_m, sizes_within
from geoseg.io.raster import gdal_env, open_scene, read_window, scene_has_mask
from geoseg.io.resample import open_resampled
from geoseg.model.onnx import onnx_device
from geoseg.report.styles import classes_qml

__all__ = ["CLEAR", "CLOUD", "CLOUD_CLASSES", "MODEL_BANDS", "MODEL_RESOLUTION", "SHADOW", "CloudExclusion", "CloudResult"]
__all__ += ["Scaling", "check_installed", "cloud_bands", "cloud_qml", "guess_scaling", "write_cloud_mask"]

CLEAR, CLOUD, SHADOW = 0, 1, 2
CLOUD_CLASSES = tuple(
    ClassInfo(i, n, c) for i, n, c in ((0, "clear", "#b4b4b4"), (1, "cloud", "#3fd2ff"), (2, "cloud shadow", "#3c2f8f"))
)
"""The values of ``clouds.tif``: :data:`CLEAR`, :data:`CLOUD`, :data:`SHADOW` (255 is nodata)."""
MODEL_BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")
"""The cloud model's bands by common name: all six when the scene has them, else the first four."""
MODEL_RESOLUTION = 30.0
"""Metres the cloud model runs at: scenes whose pixels are more than 10% off are read through an in-memory VRT at
this pixel size (averaged from finer pixels, bilinear from coarser), the mask mapped back to the scene's pixels."""
CHIP, OVERLAP = 256, 64
EXTRA = 'pip install "geoseg[clouds]"'


def check_installed() -> Path:
    """The folder of the cloud model's files; :class:`InputError` naming the extra when it is not installed.

    Example:
        >>> check_installed().name  # doctest: +SKIP
        'ukis_csmask'
    """
    try:
        import onnxruntime  # noqa: F401
        import ukis_csmask
    except ImportError:
        raise InputError(f"masking clouds needs the optional cloud model (ukis-csmask, onnxruntime): {EXTRA}") from None
    folder = Path(ukis_csmask.__file__).parent
    if not list(folder.glob("model_*b_l1c.onnx")):
        raise InputError(f"the cloud model files are missing from {folder}: reinstall with {EXTRA}")
    return folder


def cloud_bands(
    descriptions: Sequence[str | None], requested: str | Sequence[str | int] | None = None, name: str = "the scene"
) -> tuple[list[int], tuple[str, ...]]:
    """1-based scene bands for the cloud model, and the model bands they feed (6, else 4, of :data:`MODEL_BANDS`),
    found by name or common name (``B02``, ``SR_B2``, ``blue``...); ``requested`` (4 or 6 indexes or descriptions,
    in the order of :data:`MODEL_BANDS`) picks them instead.

    Example:
        >>> cloud_bands(["B02", "B03", "B04", "B08", "B11", "B12"])[0]
        [1, 2, 3, 4, 5, 6]
        >>> cloud_bands(["SR_B2 (blue)", "SR_B3 (green)", "SR_B4 (red)", "SR_B5 (nir08)"])
        ([1, 2, 3, 4], ('blue', 'green', 'red', 'nir'))
    """
    if requested is not None and requested != "":
        indexes = parse_requested(requested, descriptions, len(descriptions), option="cloud bands")
        if len(indexes) not in (4, 6):
            raise OptionError(
                f"cloud bands {requested!r} select {len(indexes)} band(s): give 4 or 6, as {', '.join(MODEL_BANDS)}"
            )
        return indexes, MODEL_BANDS[: len(indexes)]
    for wanted in (MODEL_BANDS, MODEL_BANDS[:4]):
        found = match_by_common_name(descriptions, list(wanted))
        if found is not None:
            return found[0], wanted
    has = f"bands [{', '.join(d or '?' for d in descriptions)}]" if any(descriptions) else f"{len(descriptions)} unnamed band(s)"
    needs = "blue, green, red and nir (better also swir16 and swir22), e.g. Sentinel-2 B02, B03, B04, B08, B11, B12"
    missing = [b for b in MODEL_BANDS[:4] if match_by_common_name(descriptions, [b]) is None]
    lacks = " and ".join(missing) or "one band for each"
    if len(descriptions) < 4 or all(descriptions):  # every band is known: the scene lacks them
        fix = f"it has no {lacks} band: mask clouds on a scene with those bands, or leave out --mask-clouds"
    else:
        fix = (
            f"no band is named {lacks}: if the scene has them, give the bands names (band descriptions, e.g. "
            "gdal_edit.py, or a band folder whose file names carry them)"
        )
    raise BandMismatchError(f"{name} has {has} but the cloud model needs {needs}: {fix}")


def cloud_qml() -> str:
    """The QGIS style of ``clouds.tif``: clouds and shadows coloured, clear pixels transparent.

    Example:
        >>> 'label="cloud shadow"' in cloud_qml()
        True
    """
    clear = CLOUD_CLASSES[CLEAR]
    entry = f'value="{clear.id}" color="{clear.color}" alpha="255"'
    return classes_qml(CLOUD_CLASSES).replace(entry, entry.replace('"255"', '"0"'))


@functools.lru_cache(maxsize=2)
def _session(path: str, device: str) -> Any:
    import onnxruntime as ort

    providers = ["CUDAExecutionProvider"] * onnx_device(device).startswith("cuda") + ["CPUExecutionProvider"]
    options = ort.SessionOptions()
    if threads.ONE_CALL_THREADS:  # a container's CPU quota, or a Dask worker's threads: no more
        options.intra_op_num_threads = threads.ONE_CALL_THREADS
    return ort.InferenceSession(path, sess_options=options, providers=providers)


class _CloudModel:
    """One of ukis-csmask's ONNX U-Nets: reflectance chips ``(B, C, 256, 256)`` in, probabilities ``(B, 3, ...)`` out."""

    def __init__(self, folder: Path, bands: tuple[str, ...], level: str, device: str) -> None:
        stem = f"model_{len(bands)}b_{level}"
        meta = json.loads((folder / f"{stem}.json").read_text(encoding="utf-8"))
        stats = meta["data"]["dataset_statistics"]
        self.order = [bands.index(b) for b in stats["band_names"]]
        self.mean = np.asarray(stats["img"][0], np.float32)[:, None, None]
        self.std = np.asarray(stats["img"][1], np.float32)[:, None, None]
        self.name = f"ukis-csmask {meta['model']['version']}"
        self.tags = {"GEOSEG_CLOUD_MODEL": self.name}
        self.session = _session(str(folder / f"{stem}.onnx"), device)
        self.input = self.session.get_inputs()[0].name

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        logits = self.session.run(None, {self.input: ((chips[:, self.order] - self.mean) / self.std).astype(np.float32)})[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


@dataclass
class CloudResult:
    """What :func:`write_cloud_mask` wrote and found: shares in percent of the scene's valid pixels."""

    path: Path
    style: Path | None
    shares: dict[str, float]
    valid_pixels: int
    model: str
    bands: dict[str, str]
    scaling: Scaling
    resolution: float
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def record(self, kept: bool = True) -> dict[str, Any]:
        """The cloud part of ``run.json`` (file names without folders, seconds left to the timings); ``path`` and
        ``style`` are None for a mask that was not ``kept`` (written to a temporary folder, removed).

        Example:
            >>> result.record()["shares"]  # doctest: +SKIP
            {'cloud': 8.6, 'shadow': 8.8}
        """
        path, style = (self.path.name, self.style.name if self.style else None) if kept else (None, None)
        return {**asdict(self), "path": path, "style": style} | {"seconds": round(self.seconds, 2)}

    def note(self) -> str:
        """One line for ``areas.csv``'s notes.

        Example:
            >>> result.note()  # doctest: +SKIP
            'clouds 8.6% and cloud shadows 8.8% of valid pixels are nodata (ukis-csmask 1.0.0-6BL1C)'
        """
        cloud, shadow = self.shares["cloud"], self.shares["shadow"]
        return f"clouds {cloud:.1f}% and cloud shadows {shadow:.1f}% of valid pixels are nodata ({self.model})"


class _MaskRun:
    """One scene's cloud mask: chips read from ``src`` (the scene at the model's pixel size), blended, and rows
    written on the scene ``ds``'s grid (each scene pixel takes the mask pixel its centre lies in)."""

    def __init__(self, ds: Any, src: Any, indexes: list[int], model: _CloudModel, scaling: Scaling, writer: ClassMapWriter):
        self.ds, self.src, self.indexes, self.model, self.scaling, self.writer = ds, src, indexes, model, scaling, writer
        self.ry, self.rx = ds.height / src.height, ds.width / src.width  # scene pixels per mask pixel
        self.masked, self.src_masked = scene_has_mask(ds), scene_has_mask(src)
        self.check_valid = self.masked or np.dtype(ds.dtypes[0]).kind == "f" or src is not ds
        self.counts = np.zeros(3, dtype=np.int64)
        self.blue = np.zeros(2)  # sum and count of the chips' blue reflectance (a check of the scaling)
        self.flips = north_up_flips(src.transform)  # a south-up scene's chips are shown north up, laid from the north
        self.grid = north_up_grid(make_grid(src.width, src.height, CHIP, f"{OVERLAP}px", edges="mirror"), self.flips)

    def run(self, progress: Progress | None) -> None:
        """Mask the scene block by block; chips without a valid pixel are skipped (their pixels become nodata)."""
        blocks = split_columns(self.grid.width, max(CHIP, int(BLOCK_WIDTH / self.rx)))
        done, total = 0, sum(len(self.grid.columns_in(a, b)) for a, b in blocks) * self.grid.rows
        for bx0, bx1 in blocks:
            stitcher = Stitcher(self.grid, bx0, bx1, len(CLOUD_CLASSES), functools.partial(self._rows, bx0, bx1))
            for chip in self.grid.iter_chips(bx0, bx1):
                data = self._chip(chip)
                if data is not None:  # north up for the model, its output back onto the file's grid
                    (data,) = north_up(self.flips, data)
                    stitcher.add(chip, north_up(self.flips, self.model(data[None])[0])[0])
                done += 1
                if progress:
                    progress("clouds", done, total)
            stitcher.finish()

    def _chip(self, chip: Chip) -> np.ndarray | None:
        """A chip's reflectance at the model's pixel size (invalid pixels 0), or None when no pixel is valid."""
        data, valid = read_window(self.src, chip.window, self.indexes, masked=self.src_masked, pad="reflect")
        if not valid.any():
            return None
        data = np.where(valid[None], data * self.scaling.scale + self.scaling.offset, 0.0).astype(np.float32)
        self.blue += (float(data[0][valid].sum()), int(valid.sum()))
        return data

    def result(self, out: Path, qml: Path | None, bands: dict[str, str], seconds: float) -> CloudResult:
        """The shares of cloud and shadow in valid pixels, and a warning when the reflectance looks wrong."""
        valid = int(self.counts.sum())
        shares = {k: round(100.0 * float(self.counts[v]) / max(valid, 1), 2) for k, v in (("cloud", CLOUD), ("shadow", SHADOW))}
        blue, warnings = self.blue[0] / max(self.blue[1], 1), []
        if self.blue[1] and not 0.005 <= blue <= 1.0:
            why = f"mean blue reflectance {blue:.3g} after scaling ({self.scaling.reason}) lies outside 0.005-1"
            fix = "check the scene's units (Sentinel-2 or Landsat DN, or float reflectance 0-1)"
            warnings.append(f"{self.ds.name}: {why}: the cloud mask is unreliable; {fix}")
        pixel = round(pixel_size_m(self.src), 3)
        return CloudResult(out, qml, shares, valid, self.model.name, bands, self.scaling, pixel, seconds, warnings)

    def _span(self, m0: int, m1: int, ratio: float, count: int, scene: int) -> tuple[int, int, np.ndarray]:
        """Scene pixels [f0, f1) whose centres lie in mask pixels [m0, m1) of ``count``, and their mask pixel."""
        f0 = max(0, math.ceil(m0 * ratio - 0.5))
        f1 = scene if m1 >= count else max(f0, math.ceil(m1 * ratio - 0.5))
        index = np.minimum(((np.arange(f0, f1) + 0.5) / ratio).astype(np.int64), count - 1) - m0
        return f0, f1, np.clip(index, 0, m1 - m0 - 1)

    def _rows(self, bx0: int, bx1: int, y0: int, y1: int, probs: np.ndarray, weight: np.ndarray) -> None:
        """The stitcher's sink: mask rows [y0, y1) of mask columns [bx0, bx1), onto the scene's pixels."""
        classes = probs.argmax(axis=0).astype(np.uint8)
        classes[weight <= 0] = NODATA
        fy0, fy1, rows = self._span(y0, y1, self.ry, self.src.height, self.ds.height)
        fx0, fx1, cols = self._span(bx0, bx1, self.rx, self.src.width, self.ds.width)
        if fy1 <= fy0 or fx1 <= fx0:
            return
        if self.src is not self.ds:
            classes = classes[np.ix_(rows, cols)]
        if self.check_valid:
            window = Window(fx0, fy0, fx1 - fx0, fy1 - fy0)
            classes[~read_window(self.ds, window, self.indexes, masked=self.masked)[1]] = NODATA
        self.counts += np.bincount(classes.ravel(), minlength=NODATA + 1)[: len(self.counts)]
        self.writer.write_rows(fx0, fy0, {"classes": classes})


def write_cloud_mask(
    image: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    bands: str | Sequence[str | int] | None = None,
    scaling: Scaling | None = None,
    resolution: float = MODEL_RESOLUTION,
    device: str = "auto",
    overwrite: bool = False,
    style: bool = True,
    progress: Progress | None = None,
) -> CloudResult:
    """Mask clouds and cloud shadows of a scene into ``output`` (``clouds.tif``) on the scene's grid.

    ``output`` is uint8: 0 clear, 1 cloud, 2 cloud shadow, 255 the scene's nodata, with a colour table, the class
    table tag and, with ``style``, a QGIS style (``output`` with ``.qml``). Bands are found by name
    (:func:`cloud_bands`; ``bands`` picks them), values become reflectance by ``scaling`` (default
    :func:`guess_scaling`), the model runs at about ``resolution`` metres on ``device`` (auto, cpu, cuda).
    Nothing is written unless the whole scene succeeds. The result holds the cloud and shadow shares in percent
    of valid pixels.

    Example:
        >>> r = write_cloud_mask("data_samples/brandenburg_s2_512.tif", "/tmp/clouds.tif", overwrite=True)  # doctest: +SKIP
        >>> r.shares  # doctest: +SKIP
        {'cloud': 3.1, 'shadow': 0.2}
    """
    started = time.perf_counter()
    folder = check_installed()
    if not (math.isfinite(resolution) and resolution > 0):
        raise OptionError(f"cloud model resolution {resolution}: give metres > 0 (about {MODEL_RESOLUTION:g} works best)")
    out = check_output(output, [image], overwrite)
    qml = check_output(out.with_suffix(".qml"), [image], overwrite) if style else None
    with gdal_env(), open_scene(image) as ds:
        indexes, names = cloud_bands(ds.descriptions, bands, str(ds.name))
        scale = scaling or guess_scaling(ds)
        model = _CloudModel(folder, names, scale.level, device)
        writer = ClassMapWriter({"classes": out}, ds.crs, ds.transform, ds.width, ds.height, CLOUD_CLASSES, tags=model.tags)
        near = sizes_within(pixel_sizes_m(ds), resolution, 0.1)  # each axis; else read through a VRT at the model's size
        src = ds if near else open_resampled(ds, image, resolution)[1]
        run = _MaskRun(ds, src, indexes, model, scale, writer)
        try:
            run.run(progress)
            run.writer.commit()
        except BaseException:
            run.writer.abort()
            raise
        finally:
            if src is not ds:
                src.close()
        mapping = {b: ds.descriptions[i - 1] or str(i) for b, i in zip(names, indexes)}
        if qml is not None:
            write_text_atomic(qml, cloud_qml())
        return run.result(out, qml, mapping, time.perf_counter() - started)


class CloudExclusion:
    """The chip loop's ``exclude(window)`` from a ``clouds.tif``: True where a pixel is cloud or cloud shadow.

    ``classes`` are the mask values to exclude, grown by ``buffer`` pixels (a square); ``like`` (an open scene)
    checks that the mask lies on the scene's grid. Nodata in the mask is never excluded.

    Example:
        >>> with CloudExclusion("out/clouds.tif", buffer=2) as exclude:  # doctest: +SKIP
        ...     exclude(Window(0, 0, 512, 64)).shape
        (64, 512)
    """

    def __init__(self, path: str | os.PathLike[str], classes: Sequence[int] = (CLOUD, SHADOW), buffer: int = 0, like: Any = None):
        if buffer < 0:
            raise OptionError(f"cloud buffer {buffer}: give pixels >= 0")
        self.path, self.classes, self.buffer = Path(path), np.asarray(list(classes), dtype=np.float32), int(buffer)
        self.ds = open_scene(self.path, require_georef=False)
        size = (self.ds.width, self.ds.height)
        if like is not None and (size != (like.width, like.height) or not self.ds.transform.almost_equals(like.transform)):
            self.ds.close()
            raise InputError(
                f"cloud mask {self.path} ({size[0]}x{size[1]}) is not on the grid of {like.name}: make it from that scene"
            )

    def __call__(self, window: Window) -> np.ndarray:
        """Bool array of ``window``'s shape, True where outputs must become nodata."""
        b = self.buffer
        halo = Window(int(window.col_off) - b, int(window.row_off) - b, int(window.width) + 2 * b, int(window.height) + 2 * b)
        data, valid = read_window(self.ds, halo, [1], masked=True)
        mask = np.isin(data[0], self.classes) & valid
        if b:
            mask = binary_dilation(mask, structure=np.ones((2 * b + 1, 2 * b + 1), dtype=bool))[b:-b, b:-b]
        return mask

    def close(self) -> None:
        """Close the mask file."""
        self.ds.close()

    def __enter__(self) -> CloudExclusion:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
