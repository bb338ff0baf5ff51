"""One module per geoseg command; :data:`ALGORITHMS` is what the provider offers (geoseg:COMMAND)."""

from .change import ChangeAlgorithm
from .evaluate import EvaluateAlgorithm
from .export import ExportAlgorithm
from .predict import PredictAlgorithm
from .run import RunAlgorithm
from .tile import TileAlgorithm
from .train import TrainAlgorithm
from .vectorize import VectorizeAlgorithm

ALGORITHMS = [
    RunAlgorithm,
    PredictAlgorithm,
    VectorizeAlgorithm,
    ChangeAlgorithm,
    EvaluateAlgorithm,
    TileAlgorithm,
    TrainAlgorithm,
    ExportAlgorithm,
]
