"""Options shared by every command, declared once, and the CLI's logging and error handling."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from geoseg.cli.progress import PROGRESS_LOGGER

__all__ = [
    "chip_size_option",
    "common_options",
    "inference_options",
    "model_option",
    "overlap_option",
    "overwrite_option",
    "polygon_options",
    "predict_resolution_option",
    "resolution_option",
]


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"geoseg: {level}{record.getMessage()}"


def _configure_logging(verbose: int, quiet: int) -> None:
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logger = logging.getLogger("geoseg")
    logger.handlers[:] = []
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.setLevel(max(logging.DEBUG, level))
    logger.propagate = False
    logging.getLogger(PROGRESS_LOGGER).setLevel(max(logging.DEBUG, min(level, logging.INFO) if not quiet else level))
    # GDAL's own messages (libtiff's "No space left", driver notes) reach Python through rasterio's loggers; the
    # one-line error says what failed, so they are shown only with -vv
    gdal = logging.getLogger("rasterio")
    gdal.handlers[:] = [handler] if verbose >= 2 else [logging.NullHandler()]
    gdal.propagate = False


def _store(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        ctx.meta[f"geoseg.{key}"] = value
        return value

    return callback


def common_options(func: Callable) -> Callable:
    """``-v/-q``, ``--debug`` and ``--progress`` for a command (consumed here, not passed on)."""

    @click.option(
        "-v",
        "--verbose",
        count=True,
        help="More messages (repeat for debug output).",
        callback=_store("verbose"),
        expose_value=False,
        is_eager=True,
    )
    @click.option(
        "-q",
        "--quiet",
        count=True,
        help="Fewer messages: only errors.",
        callback=_store("quiet"),
        expose_value=False,
        is_eager=True,
    )
    @click.option(
        "--debug",
        is_flag=True,
        help="Show the full traceback of errors.",
        callback=_store("debug"),
        expose_value=False,
        is_eager=True,
    )
    @click.option(
        "--progress",
        "progress_mode",
        type=click.Choice(["auto", "bar", "json", "none"]),
        default="auto",
        show_default=True,
        callback=_store("progress"),
        expose_value=False,
        help='Progress display: a bar, JSON lines on stderr ({"stage", "done", "total"}) '
        "for tools such as the QGIS plugin, or none. auto shows a bar on a terminal and, when stderr "
        "is not one (a log file, a pipe), a line every 10% of each stage such as 'predict: 39% (48/121 chips)'.",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        _configure_logging(ctx.meta.get("geoseg.verbose", 0), ctx.meta.get("geoseg.quiet", 0))
        return func(*args, **kwargs)

    return wrapper


chip_size_option = click.option(
    "--chip-size",
    type=int,
    default=None,
    help="Chip size in pixels (default: the model's); a multiple of the encoder's output stride.",
)
overlap_option = click.option(
    "--overlap",
    default=None,
    metavar="F|Npx",
    help="Overlap of neighbouring chips: a fraction in [0, 1) of the chip, or pixels such as 64px (default: the model's).",
)
overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace existing outputs (they are replaced only once the new ones are complete)."
)

F = TypeVar("F", bound=Callable[..., Any])


def _source_resolution(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """Check ``--resolution`` and read multi-file sources on that grid for the rest of the command."""
    if value is None:
        return
    from geoseg.io.sources import check_resolution, source_options

    ctx.with_resource(source_options(check_resolution(value)))


_RESOLUTION_HELP = (
    "Grid of a multi-file scene (a band folder or list, a STAC item, a SAFE, a Landsat MTL), in metres. "
    "Default: the finest grid of its bands (a panchromatic band aside); coarser bands are resampled bilinearly "
    "on read. A single raster file keeps its own grid."
)

resolution_option = click.option(
    "--resolution",
    default=None,
    metavar="METRES",
    expose_value=False,
    callback=_source_resolution,
    help=_RESOLUTION_HELP,
)


def _predict_resolution(ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    """``--resolution`` of predict, run and change: checked, kept in the options (Dask workers anywhere get it) and
    set for the rest of the command too (every stage that opens the scene reads the same grid)."""
    _source_resolution(ctx, _param, value)
    if value is None:
        return None
    from geoseg.io.sources import check_resolution

    return check_resolution(value)


predict_resolution_option = click.option(
    "--resolution",
    "resolution",
    default=None,
    metavar="METRES",
    callback=_predict_resolution,
    help=_RESOLUTION_HELP,
)


def model_option(required: bool) -> Callable[[F], F]:
    """``-m/--model``: a checkpoint, an ONNX file or ``default``."""
    return click.option(
        "-m",
        "--model",
        "model",
        required=required,
        metavar="MODEL",
        help="Model: a geoseg .pt checkpoint, an .onnx file (geoseg export or Deepness metadata), or 'default' for "
        "the bundled model (a file named default is ./default).",
    )


def inference_options(func: F) -> F:
    """Options shared by predict and run: the fields of :class:`~geoseg.core.options.PredictOptions`, and --overwrite.

    ``--backend`` offers the registered backends and ``--device`` the known devices.
    """
    from geoseg.core.options import BLOCK_WIDTH, DEVICES, OUTPUT_GRIDS, PRECISIONS, RESAMPLE
    from geoseg.inference.backends import backend_choices, backend_help

    for option in reversed(
        [
            click.option(
                "--bands",
                default=None,
                metavar="LIST",
                help="Scene bands for the model's inputs, in the model's order: 1-based indexes, band "
                "descriptions or common names (e.g. 4,3,2 or B04,B03,B02 or red,green,blue). Default: by name "
                "when the scene's band descriptions hold the model's band names, else by common name across "
                "sensors (Sentinel-2 B08 = Landsat-8 SR_B5, with a warning), else in order when the counts agree.",
            ),
            predict_resolution_option,
            chip_size_option,
            overlap_option,
            click.option(
                "--batch-size",
                default=None,
                type=int,
                metavar="N",
                help="Chips per model call. Default: 2 on the CPU (small batches run fastest there, BENCHMARKS.md); on a GPU "
                "with the torch backend what half its free memory holds (a power of two, 1 to 64), with onnx or tensorrt 8.",
            ),
            click.option(
                "--device",
                default="auto",
                show_default=True,
                type=click.Choice(DEVICES),
                help="Where the model runs; auto picks a GPU if there is one.",
            ),
            click.option(
                "--backend",
                default="auto",
                show_default=True,
                type=click.Choice(backend_choices()),
                help=backend_help(),
            ),
            click.option(
                "--tta", is_flag=True, help="Test-time augmentation: average the predictions of flipped chips (4x slower)."
            ),
            click.option(
                "--model-precision",
                default="auto",
                show_default=True,
                type=click.Choice(PRECISIONS),
                help="Arithmetic of .pt models and TensorRT engines: auto is float16 on a GPU, else float32 (ONNX: as exported).",
            ),
            click.option(
                "--compile",
                is_flag=True,
                help="torch.compile a .pt model (at its first batch; faster on a GPU; else run as it is, with a warning).",
            ),
            click.option(
                "--mask-clouds",
                is_flag=True,
                help="Make clouds and cloud shadows nodata in every output (ukis-csmask models, Sentinel-2 and "
                'Landsat; pip install "geoseg[clouds]"; needs blue, green, red, nir bands, found by name); run '
                "also writes clouds.tif and the shares in run.json (percent) and areas.csv (fractions).",
            ),
            click.option(
                "--aoi",
                default=None,
                metavar="POLYGONS",
                help="Predict only where these polygons (any vector format and CRS) lie; elsewhere is nodata.",
            ),
            click.option(
                "--block-width",
                default=BLOCK_WIDTH,
                show_default=True,
                type=int,
                metavar="PX",
                help="Scenes wider than this are stitched in vertical blocks (each with a halo of the chip "
                "overlap, same pixels), which bounds memory for any width; with --workers or --scheduler "
                "the blocks of one scene run as separate Dask tasks.",
            ),
            click.option(
                "--resample",
                default="auto",
                show_default=True,
                type=click.Choice(RESAMPLE),
                help="When the scene's pixel size is more than 25% off the model's: auto reads chips resampled to "
                "the model's (average or bilinear; one warning, also in run.json; a scene over 4x coarser than the model is "
                "predicted on its own pixels); off predicts on the scene's pixels.",
            ),
            click.option(
                "--output-grid",
                default="scene",
                show_default=True,
                type=click.Choice(OUTPUT_GRIDS),
                help="Outputs of a resampled scene on the scene's grid (probabilities brought back bilinearly before "
                "the argmax) or at the model's pixel size over its extent.",
            ),
            overwrite_option,
        ]
    ):
        func = option(func)
    return func


def polygon_options(func: F) -> F:
    """Options shared by vectorize and run."""
    for option in reversed(
        [
            click.option(
                "--min-area",
                type=float,
                default=None,
                metavar="M2",
                help="Merge regions smaller than this many square metres into the neighbour they share the "
                "longest border with (before polygonizing, so no holes appear).",
            ),
            click.option(
                "--simplify",
                type=float,
                default=None,
                metavar="M",
                help="Simplify polygons with this tolerance in metres, as a coverage: neighbours keep shared "
                "borders (no gaps, no overlaps); edges along nodata and the map's edge stay as traced, so no "
                "polygon covers nodata; --background classes are simplified with their neighbours, then left out.",
            ),
        ]
    ):
        func = option(func)
    return func
