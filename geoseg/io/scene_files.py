"""The files a scene is made of besides itself (a VRT's sources, a band folder's band files), so no output
replaces one of them, ``--overwrite`` or not.

Example:
    >>> scene_files("data_samples/brandenburg_s2_512.tif")
    []
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from geoseg.core.errors import OutputError
from geoseg.io.paths import canonical, is_connection, is_remote, sidecar_options

__all__ = ["check_files_outside", "file_id", "scene_files"]


def scene_files(scene: str | os.PathLike[str]) -> list[str]:
    """The local files a scene is made of besides itself, listed without reading pixels: a VRT's sources (rasterio's
    ``ds.files``, missing ones too), the band files of a band folder, a band list, a STAC item or a Landsat MTL.
    Nothing for a remote scene, a scene of one file, or one that cannot be listed (it fails with its own reason
    when it is opened).

    Example:
        >>> scene_files("data_samples/brandenburg_s2_512.tif")
        []
    """
    import rasterio
    from rasterio.errors import RasterioError

    from geoseg.core.errors import GeosegError
    from geoseg.io.sources import SOURCE_KINDS, source_kind

    text = os.fspath(scene)
    if is_connection(text):  # GTIFF_DIR:1:a.tif is made of a.tif
        return _local_parts(text)
    if is_remote(text):
        return []
    try:
        kind = source_kind(text)
        if kind is not None:
            listed = [f.path for f in next(k for k in SOURCE_KINDS if k.name == kind).bands(text)[0]]
        elif text.lower().endswith(".vrt") and os.path.isfile(text):
            with warnings.catch_warnings(), rasterio.Env(**sidecar_options(text)), rasterio.open(text) as ds:
                warnings.simplefilter("ignore")  # a VRT without georeferencing: said when it is opened as the scene
                listed = list(ds.files[1:])
        else:
            return []
    except (GeosegError, RasterioError, OSError):
        return []
    return [p for f in listed for p in _local_parts(f)]


def _local_parts(name: str) -> list[str]:
    """The local paths in a listed name: itself; the parts of a connection string (``GTIFF_DIR:1:a.tif``) that are
    files; none for a remote name (``/vsizip/``, URLs)."""
    if is_connection(name):  # a part may hold ":" itself: GTIFF_DIR:1:C:/data/a.tif on Windows
        parts = name.split(":")[1:]
        joined = (":".join(parts[i:j]).strip('"') for i in range(len(parts)) for j in range(i + 1, len(parts) + 1))
        return list(dict.fromkeys(part for part in joined if os.path.isfile(part)))
    return [] if is_remote(name) else [name]


def file_id(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """The device and inode of an existing file (links followed: two names of one file agree), else None."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def check_files_outside(outdir: Path, scenes: Sequence[str]) -> None:
    """Refuse an output folder that holds a file a scene is made of (a VRT's source, a band list's file): building it
    would replace that file.

    Example:
        >>> check_files_outside(Path("out"), ["mosaic.vrt"])  # its sources lie in out/a/  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        geoseg.core.errors.OutputError: out/a/classes.tif, a file of the scene mosaic.vrt, lies inside the output ...
    """
    resolved = canonical(outdir)
    for scene in scenes:
        for name in scene_files(scene):
            path = canonical(name)
            if path == resolved or resolved in path.parents:
                raise OutputError(
                    f"{name}, a file of the scene {scene}, lies inside the output folder {outdir}: choose another output folder"
                )
