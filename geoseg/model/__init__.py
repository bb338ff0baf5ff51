"""Models: the model card, smp networks, checkpoints."""

from geoseg.model.card import ClassInfo, ModelCard
from geoseg.model.factory import Model, create_model, load_model

__all__ = ["ClassInfo", "Model", "ModelCard", "create_model", "load_model"]
