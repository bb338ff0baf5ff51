"""Reports of ``geoseg change``: the from→to area matrix (``matrix.csv``), per-class gain and loss, and ``preview.png``."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.classes import NODATA
from geoseg.core.transitions import UNCHANGED_COLOR, Transitions
from geoseg.report.areas import csv_safe

__all__ = ["MATRIX_FIELDS", "TOTAL", "ChangeCounts", "class_balance", "matrix_rows", "write_change_preview", "write_matrix_csv"]

MATRIX_FIELDS = ("from_class", "to_class", "pixels", "area_m2")
"""Columns of ``matrix.csv`` (long form: one row per from→to pair, then the totals)."""
TOTAL = "total"
"""The ``from_class``/``to_class`` of matrix.csv's total rows."""
MAX_SIDE = 800


@dataclass
class ChangeCounts:
    """Pixels and m² of every from→to pair, indexed by (from id, to id): the matrix before it is written."""

    pixels: np.ndarray
    area_m2: np.ndarray

    @classmethod
    def empty(cls) -> ChangeCounts:
        """All zeros, ready to :meth:`add` strips to."""
        side = NODATA + 1
        return cls(np.zeros((side, side), np.int64), np.zeros((side, side), np.float64))

    def add(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray, row_areas: np.ndarray) -> None:
        """Count a strip: class ids of both dates ``(rows, cols)``, where both are valid, and each row's pixel area.

        Example:
            >>> c = ChangeCounts.empty()
            >>> c.add(np.array([[0, 1]]), np.array([[0, 0]]), np.array([[True, True]]), np.array([100.0]))
            >>> int(c.pixels[1, 0]), float(c.area_m2[1, 0])
            (1, 100.0)
        """
        side = NODATA + 1
        index = before.astype(np.int64) * side + after.astype(np.int64)
        weights = np.broadcast_to(row_areas[:, None], before.shape)
        self.pixels += np.bincount(index[valid], minlength=side * side).reshape(side, side)
        self.area_m2 += np.bincount(index[valid], weights=weights[valid], minlength=side * side).reshape(side, side)


def matrix_rows(counts: ChangeCounts, transitions: Transitions) -> list[dict[str, Any]]:
    """Rows of ``matrix.csv``: each pair that occurs, then per class its BEFORE total (``to_class`` total)
    and AFTER total (``from_class`` total), then the grand total; over the pixels valid on both dates.

    Example:
        >>> rows = matrix_rows(counts, transitions)  # doctest: +SKIP
        >>> rows[0]  # doctest: +SKIP
        {'from_class': 'forest', 'to_class': 'forest', 'pixels': 1200, 'area_m2': 120000.0}
    """
    name = transitions.name
    rows = [
        {"from_class": name(a), "to_class": name(b), "pixels": int(counts.pixels[a, b]), "area_m2": _m2(counts.area_m2[a, b])}
        for a, b in transitions.pairs
    ]
    ids = sorted({i for pair in transitions.pairs for i in pair})
    rows += [
        {"from_class": name(i), "to_class": TOTAL, "pixels": int(counts.pixels[i].sum()), "area_m2": _m2(counts.area_m2[i].sum())}
        for i in ids
    ]
    rows += [
        {
            "from_class": TOTAL,
            "to_class": name(i),
            "pixels": int(counts.pixels[:, i].sum()),
            "area_m2": _m2(counts.area_m2[:, i].sum()),
        }
        for i in ids
    ]
    rows.append(
        {"from_class": TOTAL, "to_class": TOTAL, "pixels": int(counts.pixels.sum()), "area_m2": _m2(counts.area_m2.sum())}
    )
    return rows


def _m2(value: float) -> float:
    return round(float(value), 2)


def class_balance(counts: ChangeCounts, transitions: Transitions) -> list[dict[str, Any]]:
    """Per class: area before and after, gain (from other classes), loss (to other classes) and net, in m² and pixels.

    Example:
        >>> class_balance(counts, transitions)[0]  # doctest: +SKIP
        {'class': 'forest', 'before_m2': 1.2e5, 'after_m2': 1.0e5, 'gain_m2': 0.0, 'loss_m2': 2.0e4, 'net_m2': -2.0e4, ...}
    """
    ids = sorted({i for pair in transitions.pairs for i in pair})
    out = []
    for i in ids:
        row: dict[str, Any] = {"class": transitions.name(i)}
        for unit, m in (("m2", counts.area_m2), ("pixels", counts.pixels)):
            stay = m[i, i]
            before, after = m[i].sum(), m[:, i].sum()
            values = {"before": before, "after": after, "gain": after - stay, "loss": before - stay, "net": after - before}
            for key, value in values.items():
                row[f"{key}_{unit}"] = _m2(value) if unit == "m2" else int(value)
        out.append(row)
    return out


def write_matrix_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Write :func:`matrix_rows` as CSV (class names a spreadsheet would run are written as text)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(MATRIX_FIELDS))
        writer.writeheader()
        writer.writerows({k: csv_safe(v) for k, v in row.items()} for row in rows)


def write_change_preview(transitions_tif: Path, transitions: Transitions, output: Path, title: str = "") -> Path:
    """A PNG with BEFORE, AFTER and the changes side by side (decimated to ~800 px each) and a legend.

    The panels show the pixels compared (valid on both dates); the changes
    panel shows unchanged pixels in light grey and changed ones in the colour
    of their AFTER class.

    Example:
        >>> write_change_preview(Path("out/transitions.tif"), transitions, Path("out/preview.png"))  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from geoseg.io.raster import gdal_env, open_scene

    with gdal_env(), open_scene(transitions_tif) as ds:
        scale = max(ds.width, ds.height) / MAX_SIDE
        shape = (max(1, round(ds.height / max(scale, 1))), max(1, round(ds.width / max(scale, 1))))
        values = ds.read(1, out_shape=shape)
    side = NODATA + 1
    from_id, to_id = np.full(side, NODATA, np.uint8), np.full(side, NODATA, np.uint8)
    for v, (a, b) in enumerate(transitions.pairs):
        from_id[v], to_id[v] = a, b
    classes = np.zeros((side, 4))
    for c in transitions.classes:
        classes[c.id] = (*(x / 255 for x in c.rgb), 1.0)
    changes = np.zeros((side, 4))
    for c in transitions.as_classes():
        changes[c.id] = (*(x / 255 for x in c.rgb), 1.0)
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.6), dpi=100, constrained_layout=True)
    panels = (("before", from_id[values], classes), ("after", to_id[values], classes), ("changes", values, changes))
    for ax, (label, image, colours) in zip(axes, panels):
        ax.imshow(image, cmap=ListedColormap(colours), vmin=0, vmax=NODATA, interpolation="nearest")
        ax.set_title(label)
        ax.set_axis_off()
    present = set(from_id[values].ravel().tolist()) | set(to_id[values].ravel().tolist())
    handles = [Patch(color=classes[c.id][:3], label=c.name) for c in transitions.classes if c.id in present]
    handles.append(Patch(color=UNCHANGED_COLOR, label="unchanged"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 7), frameon=False)
    if title:
        fig.suptitle(title)
    fig.savefig(output)
    plt.close(fig)
    return output
