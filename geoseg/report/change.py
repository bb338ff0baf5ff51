"""Reports of ``geoseg change``: the from→to area matrix (``matrix.csv``), per-class gain and loss, and ``preview.png``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.transitions import UNCHANGED_COLOR, Codes, Transitions
from geoseg.report.areas import write_csv
from geoseg.report.preview import save_figure

__all__ = [
    "MATRIX_FIELDS",
    "TOTAL",
    "ChangeCounts",
    "class_balance",
    "distinct_names",
    "matrix_rows",
    "write_change_preview",
    "write_matrix_csv",
]

MATRIX_FIELDS = ("from_class", "to_class", "pixels", "area_m2")
"""Columns of ``matrix.csv`` (long form: one row per from→to pair, then the totals)."""
TOTAL = "total"
"""The ``from_class``/``to_class`` of matrix.csv's total rows."""
MAX_SIDE = 800


@dataclass
class ChangeCounts:
    """Pixels and m² of every from→to pair, a K x K matrix over the class :class:`~geoseg.core.transitions.Codes`."""

    codes: Codes
    pixels: np.ndarray
    area_m2: np.ndarray

    @classmethod
    def empty(cls, codes: Codes) -> ChangeCounts:
        """All zeros, ready to :meth:`add` strips to."""
        k = len(codes)
        return cls(codes, np.zeros((k, k), np.int64), np.zeros((k, k), np.float64))

    def add(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray, row_areas: np.ndarray) -> None:
        """Count a strip: codes of both dates ``(rows, cols)``, where both are valid, and each row's pixel area.

        Example:
            >>> c = ChangeCounts.empty(Codes.bytes())
            >>> c.add(np.array([[0, 1]]), np.array([[0, 0]]), np.array([[True, True]]), np.array([100.0]))
            >>> c.at(1, 0)
            (1, 100.0)
        """
        k = len(self.codes)
        index = (before.astype(np.int64) * k + after)[valid]
        weights = np.broadcast_to(row_areas[:, None], before.shape)[valid]
        self.pixels += np.bincount(index, minlength=k * k).reshape(k, k)
        self.area_m2 += np.bincount(index, weights=weights, minlength=k * k).reshape(k, k)

    def _code(self, value: int) -> int:
        return int(self.codes.index(np.array([value]))[0])

    def at(self, before: int, after: int) -> tuple[int, float]:
        """Pixels and m² that went from class value ``before`` to ``after``."""
        a, b = self._code(before), self._code(after)
        return int(self.pixels[a, b]), _m2(self.area_m2[a, b])

    def totals(self, value: int) -> tuple[tuple[int, float], tuple[int, float]]:
        """Pixels and m² of class value ``value`` before, and after."""
        c = self._code(value)
        return (int(self.pixels[c].sum()), _m2(self.area_m2[c].sum())), (
            int(self.pixels[:, c].sum()),
            _m2(self.area_m2[:, c].sum()),
        )


def _row(from_class: str, to_class: str, figures: tuple[int, float]) -> dict[str, Any]:
    return {"from_class": from_class, "to_class": to_class, "pixels": figures[0], "area_m2": figures[1]}


def matrix_rows(counts: ChangeCounts, transitions: Transitions) -> list[dict[str, Any]]:
    """Rows of ``matrix.csv``: each pair that occurs, then per class its BEFORE total (``to_class`` total)
    and AFTER total (``from_class`` total), then the grand total; over the pixels valid on both dates.

    Example:
        >>> rows = matrix_rows(counts, transitions)  # doctest: +SKIP
        >>> rows[0]  # doctest: +SKIP
        {'from_class': 'forest', 'to_class': 'forest', 'pixels': 1200, 'area_m2': 120000.0}
    """
    name = transitions.name
    rows = [_row(name(a), name(b), counts.at(a, b)) for a, b in transitions.pairs]
    ids = sorted({i for pair in transitions.pairs for i in pair})
    rows += [_row(name(i), TOTAL, counts.totals(i)[0]) for i in ids]
    rows += [_row(TOTAL, name(i), counts.totals(i)[1]) for i in ids]
    rows.append(_row(TOTAL, TOTAL, (int(counts.pixels.sum()), _m2(counts.area_m2.sum()))))
    return rows


def _m2(value: float) -> float:
    return round(float(value), 2)


def class_balance(counts: ChangeCounts, transitions: Transitions) -> list[dict[str, Any]]:
    """Per class: area before and after, gain (from other classes), loss (to other classes) and net, in m² and pixels.

    Example:
        >>> class_balance(counts, transitions)[0]  # doctest: +SKIP
        {'class': 'forest', 'before_m2': 1.2e5, 'after_m2': 1.0e5, 'gain_m2': 0.0, 'loss_m2': 2.0e4, 'net_m2': -2.0e4, ...}
    """
    out = []
    for i in sorted({i for pair in transitions.pairs for i in pair}):
        row: dict[str, Any] = {"class": transitions.name(i)}
        stay, (before, after) = counts.at(i, i), counts.totals(i)
        for unit, k, rounding in (("m2", 1, _m2), ("pixels", 0, int)):
            values = {
                "before": before[k],
                "after": after[k],
                "gain": after[k] - stay[k],
                "loss": before[k] - stay[k],
                "net": after[k] - before[k],
            }
            for key, value in values.items():
                row[f"{key}_{unit}"] = rounding(value)
        out.append(row)
    return out


def write_matrix_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Write :func:`matrix_rows` as CSV (class names a spreadsheet would run are written as text)."""
    write_csv(rows, path, MATRIX_FIELDS)


def distinct_names(before: str, after: str) -> tuple[str, str]:
    """Short names that tell two inputs apart, for display: the shortest path tails that differ (the file names when
    they do), the paths as given when no tail does.

    Example:
        >>> distinct_names("2019/classes.tif", "2024/classes.tif")
        ('2019/classes.tif', '2024/classes.tif')
        >>> distinct_names("/data/s2/2019.tif", "/data/s2/2024.tif")
        ('2019.tif', '2024.tif')
        >>> distinct_names("classes.tif", "/data/2024/classes.tif")
        ('classes.tif', '2024/classes.tif')
    """
    parts = [[p for p in name.replace("\\", "/").split("/") if p] for name in (before, after)]
    for k in range(1, max(len(p) for p in parts) + 1):
        tails = ["/".join(p[-k:]) for p in parts]
        if tails[0] != tails[1]:
            return tails[0], tails[1]
    return before, after


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
    from matplotlib.patches import Patch

    from geoseg.io.raster import gdal_env, open_scene

    with gdal_env(), open_scene(transitions_tif) as ds:
        scale = max(ds.width, ds.height) / MAX_SIDE
        shape = (max(1, round(ds.height / max(scale, 1))), max(1, round(ds.width / max(scale, 1))))
        values = ds.read(1, out_shape=shape).astype(np.int64)
    n = len(transitions.pairs)
    values[(values < 0) | (values >= n)] = n  # nodata: the transparent last entry
    colour = {c.id: (*(x / 255 for x in c.rgb), 1.0) for c in transitions.classes}
    clear = (0.0, 0.0, 0.0, 0.0)
    before = np.array([colour.get(a, clear) for a, _ in transitions.pairs] + [clear])
    after = np.array([colour.get(b, clear) for _, b in transitions.pairs] + [clear])
    changes = np.array([(*(x / 255 for x in c.rgb), 1.0) for c in transitions.as_classes()] + [clear])
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.6), dpi=100, constrained_layout=True)
    for ax, (label, table) in zip(axes, (("before", before), ("after", after), ("changes", changes))):
        ax.imshow(table[values], interpolation="nearest")
        ax.set_title(label)
        ax.set_axis_off()
    shown = set(np.unique(values).tolist())
    present = {x for v, pair in enumerate(transitions.pairs) if v in shown for x in pair}
    handles = [Patch(color=c.color, label=c.name) for c in transitions.classes if c.id in present]
    handles.append(Patch(color=UNCHANGED_COLOR, label="unchanged"))
    return save_figure(fig, output, handles, title, columns=7)
