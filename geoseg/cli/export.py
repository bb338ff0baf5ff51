"""``geoseg export``: thin wrapper over :func:`geoseg.export_onnx`, its steps told as progress."""

from __future__ import annotations

import click

from geoseg.cli.options import common_options, overwrite_option
from geoseg.cli.progress import progress_shown, summary


@click.command(short_help="Export a model to ONNX for QGIS (Deepness, GeoDeep) and onnxruntime.")
@click.argument("model", metavar="MODEL")
@click.option("-o", "--output", required=True, metavar="model.onnx", help="ONNX file to write.")
@click.option("--chip-size", type=int, default=None, help="The file's static chip size in pixels (default: the model's).")
@click.option(
    "--smooth",
    type=int,
    default=0,
    show_default=True,
    metavar="N",
    help="Ask Deepness and GeoDeep to remove segments smaller than N pixels (seg_small_segment; 0: none).",
)
@click.option(
    "--quantize",
    metavar="int8",
    default=None,
    help="Write an 8-bit integer model: faster on CPUs, its class map equal to the float model's on most but not all "
    "pixels. Static quantization with --calibration; dynamic without (no data needed, but slow).",
)
@click.option(
    "--calibration",
    metavar="SCENE",
    default=None,
    help="A scene like those the model will label, with its bands: --quantize int8 measures activation ranges on up "
    "to 16 chips spread over it.",
)
@overwrite_option
@common_options
def export(
    model: str,
    output: str,
    chip_size: int | None,
    smooth: int,
    quantize: str | None,
    calibration: str | None,
    overwrite: bool,
) -> None:
    """Write MODEL (a .pt checkpoint or `default`) as one self-contained ONNX file: weights
    inside, softmax inside, static square chips, dynamic batch axis, opset 17.

    The graph takes raw band values divided by 255 (what Deepness and GeoDeep
    feed) and applies the model's per-band normalization itself, so the
    Deepness standardization keys are identity (0 and 1). Metadata as Deepness
    reads it (model_type, class_names, resolution, tiles_size, tile_size,
    tiles_overlap, standardization_mean/std, seg_thresh 0 for softmax
    heads so peers take the plain argmax, seg_small_segment from --smooth)
    plus the geoseg model card, so geoseg runs the file like the checkpoint.
    The output is static but for the batch: (batch, classes, chip, chip). A
    model without a pixel size gets no resolution key (said in a warning);
    a pixel overlap too large for the chip size is scaled to the same share
    of the chip (also said).

    --quantize int8 trades a little agreement for speed on CPUs: an 8-bit
    integer model, a quarter of the size; the layers at fine resolution stay
    float. On a shared 2-core x86 CPU without VNNI the bundled model ran
    1.09-1.15x faster end to end in geoseg predict and 1.10-1.12x faster
    alone (1.2-1.3x alone on one with VNNI; BENCHMARKS.md), and its class
    map differed from the float model's on about 1% of the pixels (where
    two classes are close). With
    --calibration SCENE (static quantization) the activation ranges are
    measured on up to 16 chips spread over SCENE, read the way predict reads
    it (at the model's pixel size), each also flipped and turned: give a
    scene like those the model will label, with the model's bands; fewer
    than 3 chips, or under 5% valid pixels, are warned about (also in the
    card). Without it the quantization is dynamic:
    no data needed, as small, but about 3.5x slower than the float model
    there. Compare both maps on your own scenes before
    switching (geoseg evaluate int8.tif float.tif). geoseg info and run.json
    show how a file was quantized; Deepness and GeoDeep run it like the
    float file.

    Its steps are told as progress, one step each: load (the model read,
    the output checked), calibrate (--calibration), export (the graph
    traced), quantize (--quantize) and write; --progress json prints a line
    as each starts and ends (what the QGIS plugin shows).

    \b
    Example:
      geoseg export default -o landcover.onnx
      geoseg predict scene.tif -m landcover.onnx -o classes.tif
      geoseg export default -o landcover-int8.onnx --quantize int8 --calibration scene.tif
    """
    from geoseg.model.onnx import export_onnx

    with progress_shown(unit="step") as update:
        path = export_onnx(
            model,
            output,
            chip_size=chip_size,
            overwrite=overwrite,
            smooth=smooth,
            quantize=quantize,
            calibration=calibration,
            progress=update,
        )
    summary(f"geoseg: wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
