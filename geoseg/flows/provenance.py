"""What made a run folder: the model (path as given and SHA-256) and the parameters that change its outputs.

run.json records both; a batch resumes a finished scene only when they are
this run's (:func:`check_resumable`), so one OUTDIR never mixes models or
options silently.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoseg.core.errors import OutputError
from geoseg.core.options import RunOptions

__all__ = [
    "RUN_ONLY",
    "ModelRef",
    "aoi_fingerprint",
    "scene_stamp",
    "check_resumable",
    "difference",
    "file_sha256",
    "output_parameters",
    "recorded_parameters",
]

RUN_ONLY = frozenset({"device", "backend", "batch_size", "block_width", "model_precision", "compile", "preview_bands"})
"""Parameters that say how a scene runs, not what it makes (same outputs up to floating-point rounding; the
preview's bands change only preview.png): a batch resumes scenes finished with other values of these."""


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, as hex.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as fh:
        ...     file_sha256(fh.name)[:12]
        'e3b0c44298fc'
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelRef:
    """A model as the user gave it: ``path`` (a file, or ``default``) and the file's ``sha256``.

    Both are None for a model object (nothing on disk to name). A batch
    makes one with :meth:`of` (the file hashed once) and hands it to every
    scene with the loaded model, so each run.json names the file.

    Example:
        >>> ModelRef.of(object())
        ModelRef(path=None, sha256=None)
    """

    path: str | None = None
    sha256: str | None = None

    @classmethod
    def of(cls, model: object) -> ModelRef:
        """The reference of ``model``: a path or ``default`` is hashed, a model object has none."""
        if not isinstance(model, (str, os.PathLike)):
            return cls()
        from geoseg.model.bundled import default_model_path

        file = default_model_path() if str(model) == "default" else Path(model)
        return cls(str(model), file_sha256(file))

    def shown(self) -> str:
        """The model in a message: its path and the start of its SHA-256.

        Example:
            >>> ModelRef("model.pt", "0123456789abcdef" * 4).shown()
            'model.pt (SHA-256 0123456789ab…)'
        """
        return f"{self.path or 'a model object'}" + (f" (SHA-256 {self.sha256[:12]}…)" if self.sha256 else "")


def output_parameters(options: RunOptions) -> dict[str, Any]:
    """The parameters of run.json that change a scene's outputs (all but :data:`RUN_ONLY`), as JSON values, with
    ``resolution``, the grid of a multi-file source (run.json's ``inputs``: ``--resolution``, or set for the process).

    Example:
        >>> output_parameters(RunOptions().replace(min_area=500))["min_area"]
        500.0
    """
    from geoseg.io.sources import default_resolution

    values = {k: v for k, v in options.record().items() if k not in RUN_ONLY}
    given = options.predict.resolution
    values["resolution"] = given if given is not None else default_resolution()
    return dict(json.loads(json.dumps(values)))


def aoi_fingerprint(aoi: str | os.PathLike[str] | None) -> str | None:
    """SHA-256 of an area of interest's polygons as read (their CRS and WKB, in file order), or None when there is
    none or it cannot be read (the run says why).

    Geometry, not bytes: a GeoPackage that QGIS opened and saved unchanged keeps its fingerprint, an edited
    polygon changes it. run.json records it, so a batch does not resume scenes cut to an AOI edited since.

    Example:
        >>> aoi_fingerprint(None) is None
        True
    """
    if aoi is None:
        return None
    from geoseg.io.paths import is_remote
    from geoseg.io.vector import split_layer

    file, layer, where = split_layer(str(aoi))
    try:
        stat = None if is_remote(file) else os.stat(file)
        return _fingerprint(file, layer, where, stat and (stat.st_size, stat.st_mtime_ns))
    except Exception:  # noqa: BLE001 - unreadable here means the run itself refuses it, with its own message
        return None


def scene_stamp(scene: str | os.PathLike[str]) -> str | None:
    """SHA-256 of the names, sizes and modification times of a scene's files (itself, by name only for a VRT, which
    GDAL rewrites with statistics, and those it is made of: a VRT's sources, a band folder's bands; not the overviews
    and statistics beside them), or None for a remote scene or one whose files are missing.

    run.json records it, so a batch resumes a finished scene only when it is the same scene, unchanged: another
    file of the same name (``in2/s0.tif`` after ``in/s0.tif``) or a file edited since runs again or is refused.

    Example:
        >>> scene_stamp("/vsicurl/https://example.com/a.tif") is None
        True
    """
    from geoseg.io.paths import is_connection, is_remote
    from geoseg.io.scene_files import scene_files

    text = os.fspath(scene)
    if is_remote(text) and not is_connection(text):
        return None
    parts = [f for f in scene_files(text) if not f.lower().endswith(_DERIVED)]  # a VRT's own overviews, statistics
    digest = hashlib.sha256()
    if os.path.isfile(text):  # a band folder's own time changes with any file added (.DS_Store): its bands count
        digest.update(_file_key(text, stat=not text.lower().endswith(".vrt")))  # GDAL writes statistics into a VRT
    for name in sorted(parts):
        if not os.path.exists(name):
            return None
        digest.update(_file_key(name))
    return digest.hexdigest()


_DERIVED = (".ovr", ".aux.xml")
"""Files GDAL or QGIS write beside a scene (overviews, statistics): not what the scene is."""


def _file_key(path: str, stat: bool = True) -> bytes:
    """A file's name (not its folder: a worker may see the share under another path), size and modification time."""
    st = os.stat(path)
    key = f"{os.path.basename(path)}\0{st.st_size if stat else ''}\0{st.st_mtime_ns if stat else ''}\0"
    return key.encode("utf-8", "surrogateescape")


@functools.lru_cache(maxsize=8)
def _fingerprint(file: str, layer: str | None, where: str | None, version: object) -> str:
    """:func:`aoi_fingerprint`, once per file version (``version``: size and modification time) in a batch."""
    import shapely

    from geoseg.io.vector import read_features, vector_layer

    frame = read_features(file, vector_layer(file, layer, "--aoi"), where, "--aoi")
    digest = hashlib.sha256(str(frame.crs.to_wkt() if frame.crs else "").encode())
    for wkb in shapely.to_wkb(frame.geometry.to_numpy(), hex=False):
        digest.update(wkb or b"")
    return digest.hexdigest()


def recorded_parameters(record: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`output_parameters` as a run.json records them; those it lacks (an older geoseg) take the defaults."""
    defaults = output_parameters(RunOptions())
    given = dict(record.get("parameters") or {})
    given["resolution"] = (record.get("inputs") or {}).get("resolution")
    return {k: given.get(k, default) for k, default in defaults.items()}


def _model_differs(recorded: Mapping[str, Any], ref: ModelRef, card: Any) -> bool:
    """Whether run.json's ``model`` is another model than ``ref`` (by SHA-256; by name, architecture, encoder and
    quantization where either has no SHA-256: a model object, or a batch scene of an earlier geoseg)."""
    if recorded.get("sha256") and ref.sha256:
        return bool(recorded["sha256"] != ref.sha256)
    mine = {"name": card.name, "arch": card.arch, "encoder": card.encoder, "quantization": card.quantization}
    return any(json.loads(json.dumps(value)) != recorded.get(key) for key, value in mine.items())


def _shown(value: Any) -> str:
    return "not set" if value is None else ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _same(key: str, before: Mapping[str, Any], now: Mapping[str, Any], record: Mapping[str, Any], card: Any) -> bool:
    """Whether two values that read differently ran the same: ``--chip-size 256`` and the model's 256 (run.json's
    ``effective``), ``--overlap 0.25`` and ``64px`` of 256 px chips, one area of interest spelled two ways, the bands
    picked without ``--bands`` given by their names."""
    from geoseg.core.grid import parse_overlap
    from geoseg.io.paths import same_file

    if key == "aoi":
        return before[key] is not None and now[key] is not None and same_file(before[key], now[key])
    if key == "bands":  # the bands picked without --bands, now given by name: the same bands in the same order
        picked = ",".join((record.get("effective") or {}).get("bands") or [])
        return before[key] is None and bool(picked) and now[key] == picked
    if key not in ("chip_size", "overlap") or card is None or not hasattr(card, "chip_size"):
        return False
    ran = dict(record.get("effective") or {})
    chip_then = ran.get("chip_size") or before["chip_size"] or card.chip_size
    chip_now = now["chip_size"] or card.chip_size
    if key == "chip_size":
        return bool(chip_then == chip_now)
    then = ran.get("overlap_px")
    if then is None:
        then = parse_overlap(before["overlap"] if before["overlap"] is not None else card.overlap, chip_then)
    return bool(then == parse_overlap(now["overlap"] if now["overlap"] is not None else card.overlap, chip_now))


def difference(
    record: Mapping[str, Any], ref: ModelRef, card: Any, parameters: Mapping[str, Any], scene: str | None = None
) -> str | None:
    """What differs between a finished scene's run.json and this run (the scene, model or parameters), or None.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> card = NS(name="m", arch="unet", encoder="resnet18", quantization=None)
        >>> params = output_parameters(RunOptions().replace(min_area=500))
        >>> record = {"model": {"sha256": "ab" * 32, "path": "a.pt"}, "parameters": RunOptions().record()}
        >>> difference(record, ModelRef("a.pt", "ab" * 32), card, params)
        'made with --min-area not set (this run: 500.0)'
    """
    inputs = dict(record.get("inputs") or {})
    if scene is not None and _other_scene(inputs, scene):
        return (
            f"made from {inputs.get('image')} as it was then (another file of the same name, or changed since; "
            "delete that scene's folder to run it again)"
        )
    model = dict(record.get("model") or {})
    if _model_differs(model, ref, card):
        then = ModelRef(model.get("path") or model.get("name"), model.get("sha256"))
        return f"made with model {then.shown()}, this run uses {ref.shown() if ref.path else card.name}"
    before = recorded_parameters(record)
    changed = [k for k in parameters if before.get(k) != parameters[k] and not _same(k, before, parameters, record, card)]
    if changed:
        return "made with " + ", ".join(
            f"--{k.replace('_', '-')} {_shown(before.get(k))} (this run: {_shown(parameters[k])})" for k in changed
        )
    cut_to = inputs.get("aoi_sha256")
    if cut_to and parameters.get("aoi") is not None and aoi_fingerprint(parameters["aoi"]) not in (cut_to, None):
        return f"cut to --aoi {parameters['aoi']} as it was before its polygons were changed"
    return None


def _other_scene(inputs: Mapping[str, Any], scene: str) -> bool:
    """Whether run.json's ``inputs`` are of another scene than ``scene``: by the files' stamp, or by the name of a
    remote scene (``/vsicurl/.../2023/T33UUU.tif`` and ``.../2024/T33UUU.tif`` write one folder)."""
    from geoseg.io.paths import is_remote

    now = scene_stamp(scene)
    if now is not None:
        return bool(inputs.get("image_stamp")) and inputs["image_stamp"] != now
    return is_remote(scene) and inputs.get("image") not in (None, scene)


def check_resumable(
    finished: Iterable[tuple[str, Path]], ref: ModelRef, card: Any, parameters: Mapping[str, Any], outdir: Path
) -> None:
    """Refuse a batch that would skip a finished scene made with another model or other output parameters.

    ``finished`` are the (scene, run.json) pairs the batch would skip. The
    error names the first differing scene and what differs.

    Example:
        >>> check_resumable([], ModelRef(), None, {}, Path("out"))
    """
    for scene, run_json in finished:
        try:
            record = json.loads(run_json.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a record: the scene runs again
        what = difference(record, ref, card, parameters, scene) if isinstance(record, dict) else None
        if what:
            raise OutputError(
                f"batch {outdir}: scene {run_json.parent.name} ({scene}) was {what}; "
                "use --overwrite to redo all, or another OUTDIR"
            )
