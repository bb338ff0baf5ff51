"""The model bundled with geoseg (``-m default``)."""

from __future__ import annotations

from pathlib import Path

from geoseg.core.errors import ModelError

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "default.pt"


def default_model_path() -> Path:
    """Path of the bundled default model; a clear error while none is bundled."""
    if not DEFAULT_MODEL.is_file():
        raise ModelError("no default model is bundled with this geoseg version: give a model file with -m PATH")
    return DEFAULT_MODEL
