"""Segmentation metrics from a confusion matrix: per-class IoU, F1, precision, recall, accuracy.

One accumulator serves training (per epoch) and ``geoseg evaluate`` (per
block of a class map). Pixels whose truth is ``IGNORE_INDEX`` (unlabeled) or
whose prediction is nodata never count. A class without truth pixels has no
scores (None, shown "-"), never 0; a score resting on fewer than
:data:`MIN_SUPPORT` truth pixels is named by :func:`thin_support`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["MIN_SUPPORT", "ConfusionMatrix", "format_table", "thin_support"]

MIN_SUPPORT = 1000
"""Truth pixels below which a class's scores are said to be unreliable."""


class ConfusionMatrix:
    """Accumulates a ``K x K`` confusion matrix (rows truth, columns prediction).

    Example:
        >>> cm = ConfusionMatrix(2)
        >>> cm.update(np.array([0, 1, 1, 255]), np.array([0, 1, 0, 1]))
        >>> cm.matrix.tolist()
        [[1, 0], [1, 1]]
        >>> cm.iou().round(3).tolist()
        [0.5, 0.5]
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = int(num_classes)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, truth: np.ndarray, pred: np.ndarray) -> None:
        """Add pixels; truth outside 0..K-1 (unlabeled) and predictions outside 0..K-1 (nodata) are skipped."""
        truth = np.asarray(truth).ravel().astype(np.int64, copy=False)
        pred = np.asarray(pred).ravel().astype(np.int64, copy=False)
        k = self.num_classes
        keep = (truth >= 0) & (truth < k) & (pred >= 0) & (pred < k)
        if not keep.all():
            truth, pred = truth[keep], pred[keep]
        self.matrix += np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another accumulator's counts."""
        self.matrix += other.matrix

    @property
    def support(self) -> np.ndarray:
        """Labeled pixels per class (row sums)."""
        return self.matrix.sum(axis=1)

    def _ratio(self, num: np.ndarray, den: np.ndarray) -> np.ndarray:
        out = np.full(self.num_classes, np.nan)
        np.divide(num, den, out=out, where=den > 0)
        return out

    def iou(self) -> np.ndarray:
        """Intersection over union per class (NaN for a class absent from truth and prediction)."""
        tp = np.diag(self.matrix)
        return self._ratio(tp, self.matrix.sum(0) + self.matrix.sum(1) - tp)

    def precision(self) -> np.ndarray:
        """Per-class precision (NaN where the class was never predicted)."""
        return self._ratio(np.diag(self.matrix), self.matrix.sum(0))

    def recall(self) -> np.ndarray:
        """Per-class recall (NaN where the class has no truth pixels)."""
        return self._ratio(np.diag(self.matrix), self.matrix.sum(1))

    def f1(self) -> np.ndarray:
        """Per-class F1 score."""
        tp = np.diag(self.matrix)
        return self._ratio(2 * tp, self.matrix.sum(0) + self.matrix.sum(1))

    def accuracy(self) -> float:
        """Share of counted pixels predicted right (NaN when none was counted)."""
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def summary(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """All metrics as plain JSON-ready values; means are over classes present in the truth.

        Per class: ``pixels`` (truth pixels), ``predicted_pixels``, ``iou``,
        ``f1``, ``precision`` and ``recall``; a class without truth pixels has
        None for every score (no truth to score against), not 0.

        Example:
            >>> cm = ConfusionMatrix(3); cm.update(np.array([0, 1, 1]), np.array([0, 1, 2]))
            >>> s = cm.summary(["land", "water", "snow"])
            >>> s["mean_iou"], s["classes"][2]["iou"], s["classes"][2]["predicted_pixels"]
            (0.75, None, 1)
        """
        names = list(names) if names is not None else [f"class_{i}" for i in range(self.num_classes)]
        present = self.support > 0
        predicted = self.matrix.sum(axis=0)
        iou, f1, prec, rec = self.iou(), self.f1(), self.precision(), self.recall()

        def mean(values: np.ndarray) -> float | None:
            vals = np.nan_to_num(values[present], nan=0.0)
            return float(vals.mean()) if vals.size else None

        def clean(values: np.ndarray, i: int) -> float | None:
            return None if not present[i] or np.isnan(values[i]) else float(values[i])

        return {
            "pixels": int(self.matrix.sum()),
            "accuracy": None if np.isnan(self.accuracy()) else self.accuracy(),
            "mean_iou": mean(iou),
            "mean_f1": mean(f1),
            "classes": [
                {
                    "id": i,
                    "name": names[i],
                    "pixels": int(self.support[i]),
                    "predicted_pixels": int(predicted[i]),
                    "iou": clean(iou, i),
                    "f1": clean(f1, i),
                    "precision": clean(prec, i),
                    "recall": clean(rec, i),
                }
                for i in range(self.num_classes)
            ],
            "confusion_matrix": self.matrix.tolist(),
        }


def thin_support(summary: dict[str, Any], minimum: int = MIN_SUPPORT) -> str | None:
    """One warning line naming the classes whose scores rest on fewer than ``minimum`` truth pixels, or None.

    Classes without any truth pixel have no scores and are not named.

    Example:
        >>> cm = ConfusionMatrix(2); cm.update(np.array([0] * 20 + [1] * 2000), np.zeros(2020, int))
        >>> thin_support(cm.summary(["road", "other"]))
        'scores of road (20 px) rest on fewer than 1000 truth pixels: read them with caution or label more'
    """
    thin = [f"{c['name']} ({c['pixels']} px)" for c in summary["classes"] if 0 < c["pixels"] < minimum]
    if not thin:
        return None
    return f"scores of {', '.join(thin)} rest on fewer than {minimum} truth pixels: read them with caution or label more"


def format_table(summary: dict[str, Any]) -> str:
    """A readable per-class table of :meth:`ConfusionMatrix.summary` (for stdout); "-" marks a score without truth.

    Example:
        >>> cm = ConfusionMatrix(2); cm.update(np.array([0, 0]), np.array([0, 1]))
        >>> print(format_table(cm.summary(["land", "water"])).splitlines()[2])
          1  water                         0           1       -       -       -       -
    """

    def num(v: float | None) -> str:
        return "     -" if v is None else f"{v:6.3f}"

    lines = [f"{'id':>3}  {'class':<20} {'pixels':>10}  {'predicted':>10}  {'IoU':>6}  {'F1':>6}  {'prec':>6}  {'recall':>6}"]
    for c in summary["classes"]:
        lines.append(
            f"{c['id']:>3}  {c['name'][:20]:<20} {c['pixels']:>10}  {c.get('predicted_pixels', ''):>10}  {num(c['iou'])}  "
            f"{num(c['f1'])}  {num(c['precision'])}  {num(c['recall'])}"
        )
    lines.append(
        f"mean IoU {num(summary['mean_iou']).strip()}   mean F1 {num(summary['mean_f1']).strip()}   "
        f"pixel accuracy {num(summary['accuracy']).strip()}   labeled pixels {summary['pixels']}"
    )
    k = len(summary["classes"])
    width = max(6, *(len(str(v)) for row in summary["confusion_matrix"] for v in row))
    lines.append("confusion matrix (rows truth, columns prediction):")
    lines.append("     " + " ".join(f"{j:>{width}}" for j in range(k)))
    for i, row in enumerate(summary["confusion_matrix"]):
        lines.append(f"{i:>4} " + " ".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)
