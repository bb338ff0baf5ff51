"""Training curves: loss and validation scores per epoch as one PNG (matplotlib, loaded only here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geoseg.io.outputs import atomic_output

__all__ = ["plot_curves"]


def plot_curves(path: Path, history: list[dict[str, Any]]) -> None:
    """Plot training and validation loss, validation mean IoU and pixel accuracy per epoch to ``path`` (PNG).

    Example:
        >>> plot_curves(Path("curves.png"), [{"epoch": 1, "train_loss": 0.9, "val_miou": 0.4}])  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [r["train_loss"] for r in history], label="train")
    if any(r.get("val_loss") is not None for r in history):
        a.plot(epochs, [r.get("val_loss") for r in history], label="validation")
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.legend(), a.set_title("loss")
    b.plot(epochs, [r.get("val_miou") for r in history], label="mean IoU")
    b.plot(epochs, [r.get("val_accuracy") for r in history], label="pixel accuracy")
    b.set_xlabel("epoch"), b.set_ylim(0, 1), b.legend(), b.set_title("validation")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
