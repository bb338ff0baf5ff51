"""Evaluation reports people can look at: ``per_class.csv`` and ``confusion.png`` of a metrics summary.

The summary is :meth:`geoseg.core.metrics.ConfusionMatrix.summary` (what
``geoseg evaluate --json`` writes). A class without truth pixels has no
scores: empty CSV cells and a grey "no truth" row in the picture, never 0.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.classes import ClassInfo
from geoseg.core.version import __version__
from geoseg.io.outputs import REPORT_FILES, REPORT_MARKS
from geoseg.report.areas import write_csv
from geoseg.report.errormap import error_table
from geoseg.report.styles import classes_qml

__all__ = [
    "PER_CLASS_FIELDS",
    "REPORT_FILES",
    "REPORT_MARKS",
    "per_class_rows",
    "write_confusion_png",
    "write_per_class_csv",
    "write_report_files",
]

PER_CLASS_FIELDS = ("class_id", "class_name", "iou", "precision", "recall", "f1", "truth_pixels", "predicted_pixels")
"""Columns of ``per_class.csv``."""

_ANNOTATE_UP_TO = 40  # classes; beyond this the cells are too small for numbers


def per_class_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per class for ``per_class.csv``: scores rounded to 6 decimals, None where the class has no truth.

    Example:
        >>> s = {"classes": [{"id": 0, "name": "water", "pixels": 0, "predicted_pixels": 4,
        ...                   "iou": None, "precision": None, "recall": None, "f1": None}]}
        >>> per_class_rows(s)[0]["iou"] is None, per_class_rows(s)[0]["predicted_pixels"]
        (True, 4)
    """

    def score(v: float | None) -> float | None:
        return None if v is None else round(float(v), 6)

    return [
        {
            "class_id": c["id"],
            "class_name": c["name"],
            "iou": score(c["iou"]),
            "precision": score(c["precision"]),
            "recall": score(c["recall"]),
            "f1": score(c["f1"]),
            "truth_pixels": c["pixels"],
            "predicted_pixels": c.get("predicted_pixels"),
        }
        for c in summary["classes"]
    ]


def write_per_class_csv(summary: dict[str, Any], path: Path) -> Path:
    """Write :func:`per_class_rows` as CSV; scores of a class without truth are empty cells.

    Class names a spreadsheet would run as a formula are written as text.

    Example:
        >>> write_per_class_csv(summary, Path("per_class.csv"))  # doctest: +SKIP
    """
    return write_csv(per_class_rows(summary), path, PER_CLASS_FIELDS)


def _count(n: int) -> str:
    """A pixel count short enough for a cell: 950, 45600, 123.4k, 4.1M."""
    if n < 100_000:
        return str(n)
    return f"{n / 1e3:.1f}k" if n < 1_000_000 else f"{n / 1e6:.1f}M"


def _shares(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the share of a truth class's pixels); NaN rows where a class has no truth."""
    rows = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    out = np.full(matrix.shape, np.nan)
    np.divide(matrix, rows, out=out, where=rows > 0)
    return out


def write_confusion_png(summary: dict[str, Any], path: Path, title: str = "") -> Path:
    """Draw the row-normalized confusion matrix (rows truth, columns prediction) with class names and pixel counts.

    Each cell's colour is the share of the truth class's pixels predicted as
    the column's class (rows sum to 1); the cell text is the pixel count and
    that share. A class without truth pixels is a grey row labelled "no truth".
    Drawn with matplotlib's Agg canvas (no pyplot, no global backend change).

    Example:
        >>> write_confusion_png(summary, Path("confusion.png"))  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    matrix = np.asarray(summary["confusion_matrix"], dtype=np.int64).reshape(len(summary["classes"]), -1)
    names = [str(c["name"]) for c in summary["classes"]]
    k = len(names)
    shares = _shares(matrix)
    side = min(max(5.0, 0.55 * k + 3.0), 30.0)
    fig = Figure(figsize=(side + 1.2, side), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    cmap = _colormap()
    image = ax.imshow(np.ma.masked_invalid(shares), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(range(k), names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), [n if matrix[i].sum() else f"{n} (no truth)" for i, n in enumerate(names)])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("truth class")
    ax.set_title(title or "confusion matrix: rows are truth, normalized; cells show pixels and share")
    if k <= _ANNOTATE_UP_TO:
        _annotate(ax, matrix, shares, fontsize=max(5.0, 10.0 - k / 5))
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the truth class's pixels")
    fig.savefig(path)
    return Path(path)


def _colormap() -> Any:
    """Blues with grey for rows without truth."""
    from matplotlib import colormaps

    return colormaps["Blues"].with_extremes(bad="#e6e6e6")


def _annotate(ax: Any, matrix: np.ndarray, shares: np.ndarray, fontsize: float) -> None:
    """Write the pixel count and the row share into each cell (white on dark cells)."""
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            share = shares[i, j]
            text = _count(int(matrix[i, j])) + ("" if np.isnan(share) else f"\n{share:.0%}")
            color = "white" if not np.isnan(share) and share > 0.5 else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=fontsize)


def write_report_files(folder: Path, summary: dict[str, Any], classes: Sequence[ClassInfo]) -> None:
    """Write ``per_class.csv``, ``confusion.png``, ``errors.qml`` and, last, ``metrics.json`` into ``folder``.

    ``errors.tif`` is streamed by the evaluation itself (it needs the pixels);
    ``metrics.json`` is the summary plus ``geoseg_version`` and marks the folder
    as a complete report of geoseg's.

    Example:
        >>> write_report_files(Path("report.partial"), summary, table)  # doctest: +SKIP
    """
    folder = Path(folder)
    write_per_class_csv(summary, folder / "per_class.csv")
    write_confusion_png(summary, folder / "confusion.png")
    (folder / "errors.qml").write_text(classes_qml(error_table(classes)), encoding="utf-8")
    record = {**summary, "geoseg_version": __version__}
    (folder / "metrics.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
