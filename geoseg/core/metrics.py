"""Segmentation metrics from a confusion matrix: per-class IoU, F1, precision, recall, accuracy.

One accumulator serves training (per epoch) and ``geoseg evaluate`` (per
block of a class map). Pixels whose truth is ``IGNORE_INDEX`` (unlabeled) or
whose prediction is nodata never count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ConfusionMatrix"]


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

        Example:
            >>> cm = ConfusionMatrix(2); cm.update(np.array([0, 1]), np.array([0, 1]))
            >>> cm.summary(["land", "water"])["mean_iou"]
            1.0
        """
        names = list(names) if names is not None else [f"class_{i}" for i in range(self.num_classes)]
        present = self.support > 0
        iou, f1, prec, rec = self.iou(), self.f1(), self.precision(), self.recall()

        def mean(values: np.ndarray) -> float | None:
            vals = np.nan_to_num(values[present], nan=0.0)
            return float(vals.mean()) if vals.size else None

        def clean(v: float) -> float | None:
            return None if np.isnan(v) else float(v)

        return {
            "pixels": int(self.matrix.sum()),
            "accuracy": clean(self.accuracy()),
            "mean_iou": mean(iou),
            "mean_f1": mean(f1),
            "classes": [
                {
                    "id": i,
                    "name": names[i],
                    "pixels": int(self.support[i]),
                    "iou": clean(iou[i]),
                    "f1": clean(f1[i]),
                    "precision": clean(prec[i]),
                    "recall": clean(rec[i]),
                }
                for i in range(self.num_classes)
            ],
            "confusion_matrix": self.matrix.tolist(),
        }


def format_table(summary: dict[str, Any]) -> str:
    """A readable per-class table of :meth:`ConfusionMatrix.summary` (for stdout)."""

    def num(v: float | None) -> str:
        return "   -  " if v is None else f"{v:6.3f}"

    lines = [f"{'id':>3}  {'class':<20} {'pixels':>10}  {'IoU':>6}  {'F1':>6}  {'prec':>6}  {'recall':>6}"]
    for c in summary["classes"]:
        lines.append(
            f"{c['id']:>3}  {c['name'][:20]:<20} {c['pixels']:>10}  {num(c['iou'])}  {num(c['f1'])}  "
            f"{num(c['precision'])}  {num(c['recall'])}"
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
