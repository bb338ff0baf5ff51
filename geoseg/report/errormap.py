"""The error map of an evaluation (``errors.tif``): where a class map is right, where it is wrong and which truth class it
missed there, and where nothing was scored.

Values, on the class map's grid:

- ``0`` (:data:`CORRECT`): the prediction equals the truth;
- ``1 + k``: wrong, the truth there is class ``k`` (the map missed class ``k``: "wrong (truth: water)");
- ``255`` (:data:`NOT_SCORED`, the nodata value): no truth label there, or no prediction (nodata).

The error map is written like a class map (colour table, class table in the
``GEOSEG_CLASSES`` tag, QML): its "classes" are :func:`error_table`. Wrong
pixels take the colour of the truth class they missed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geoseg.core.classes import NODATA, ClassInfo
from geoseg.core.errors import InputError

__all__ = ["CORRECT", "CORRECT_COLOR", "MAX_CLASSES", "NOT_SCORED", "error_codes", "error_table"]

CORRECT = 0
"""Error-map value of a pixel predicted right."""
NOT_SCORED = NODATA
"""Error-map value (and nodata) of a pixel without truth or without prediction."""
MAX_CLASSES = NODATA - 1
"""Most classes an error map can describe (codes 1..K stay below :data:`NOT_SCORED`)."""
CORRECT_COLOR = "#d9d9d9"
"""Light grey: right pixels recede, wrong ones show in the colour of the class they missed."""


def error_table(classes: Sequence[ClassInfo]) -> list[ClassInfo]:
    """The error map's class table: ``correct`` and one ``wrong (truth: NAME)`` entry per class of the map.

    Example:
        >>> [(c.id, c.name) for c in error_table([ClassInfo(0, "water", "#1f78b4"), ClassInfo(1, "forest", "#1b7837")])]
        [(0, 'correct'), (1, 'wrong (truth: water)'), (2, 'wrong (truth: forest)')]
    """
    if len(classes) > MAX_CLASSES:
        raise InputError(
            f"the class map has {len(classes)} classes; an error map describes at most {MAX_CLASSES}: evaluate without --report"
        )
    return [ClassInfo(CORRECT, "correct", CORRECT_COLOR)] + [
        ClassInfo(CORRECT + 1 + i, f"wrong (truth: {c.name})", c.color) for i, c in enumerate(classes)
    ]


def error_codes(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Error-map values (uint8) of truth and predicted class ids of the same shape.

    Truth outside 0..K-1 (unlabeled) or predictions outside 0..K-1 (nodata)
    are :data:`NOT_SCORED`, as :class:`geoseg.core.metrics.ConfusionMatrix` skips them.

    Example:
        >>> error_codes(np.array([0, 1, 1, 255]), np.array([0, 0, 255, 1]), 2).tolist()
        [0, 2, 255, 255]
    """
    truth = np.asarray(truth).astype(np.int64, copy=False)
    pred = np.asarray(pred).astype(np.int64, copy=False)
    scored = (truth >= 0) & (truth < num_classes) & (pred >= 0) & (pred < num_classes)
    out = np.full(truth.shape, NOT_SCORED, np.uint8)
    out[scored] = np.where(truth[scored] == pred[scored], CORRECT, truth[scored] + CORRECT + 1)
    return out
