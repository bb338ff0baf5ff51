"""TensorRT through onnxruntime: the provider's options (an optimization profile, precision, engine caches) and
where its engines are kept between runs.

Example:
    >>> TENSORRT_MAX_BATCH
    64
"""

from __future__ import annotations

import os
from pathlib import Path

from geoseg.core.errors import ModelError

__all__ = ["TENSORRT_CACHE_ENV", "TENSORRT_MAX_BATCH", "tensorrt_cache", "tensorrt_provider"]

TENSORRT_MAX_BATCH = 64
"""The largest batch a TensorRT engine is built for (its optimization profile; the runner splits larger ones)."""
TENSORRT_CACHE_ENV = "GEOSEG_TENSORRT_CACHE"
"""Environment variable naming the folder of TensorRT's engine and timing caches (default: the user's cache)."""


def tensorrt_cache() -> Path:
    """Where TensorRT engines are kept between runs (building one takes minutes; loading a cached one, seconds).

    Example:
        >>> tensorrt_cache().name
        'tensorrt'
    """
    if os.environ.get(TENSORRT_CACHE_ENV):
        return Path(os.environ[TENSORRT_CACHE_ENV])
    base = os.environ.get("LOCALAPPDATA") if os.name == "nt" else os.environ.get("XDG_CACHE_HOME")
    return Path(base or Path.home() / ".cache") / "geoseg" / "tensorrt"


def tensorrt_provider(path: str | os.PathLike, precision: str, batch: int = 8) -> tuple[str, dict[str, str]]:
    """onnxruntime's TensorRT provider with its options for the model file ``path``: an optimization profile
    from 1 to :data:`TENSORRT_MAX_BATCH` chips (tuned for ``batch``), ``precision`` fp16 or bf16 layers where
    TensorRT finds them faster (fp32: none), the timing cache in :func:`tensorrt_cache` and engines in a folder
    of it named by the file's bytes and the precision (a retrained model never gets an older model's engine).

    Example:
        >>> name, options = tensorrt_provider("model.onnx", "fp16")  # doctest: +SKIP
        >>> options["trt_profile_max_shapes"]  # doctest: +SKIP
        'input:64x3x256x256'
    """
    import hashlib

    import onnx

    data = Path(path).read_bytes()  # read once: the graph's input, and the engine's folder
    graph_input = onnx.load_from_string(data).graph.input[0]
    dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    if len(dims) != 4 or not all(dims[1:]):
        raise ModelError(f"{path}: --backend tensorrt needs an input of (batch, bands, N, N) with fixed bands and N")
    # onnxruntime names engines by the graph's names and the file's name, not its weights: one folder per file's bytes
    digest = hashlib.sha256(data + precision.encode()).hexdigest()[:16]
    cache = tensorrt_cache()
    (cache / digest).mkdir(parents=True, exist_ok=True)

    def shape(chips: int) -> str:
        return f"{graph_input.name}:{chips}x" + "x".join(str(d) for d in dims[1:])

    options = {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache / digest),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
        "trt_profile_min_shapes": shape(1),
        "trt_profile_opt_shapes": shape(max(1, min(batch, TENSORRT_MAX_BATCH))),
        "trt_profile_max_shapes": shape(TENSORRT_MAX_BATCH),
    }
    if precision in ("fp16", "bf16"):
        options[f"trt_{precision}_enable"] = "True"
    return "TensorrtExecutionProvider", options
