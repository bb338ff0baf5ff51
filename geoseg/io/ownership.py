"""Who owns an output folder: geoseg's marks, what each kind of folder may hold, and the rule for replacing one.

A folder is geoseg's when it holds a mark geoseg wrote (``run.json``,
``tile.json``, ``summary.json``, ``metrics.json``, ``batch.json``) and
nothing but what that command writes (GDAL's and SQLite's sidecar files of
those, and hidden temporaries, aside). Only such a folder is replaced, and
only with ``--overwrite``; a folder holding anything else is refused naming
what geoseg did not write.
"""

from __future__ import annotations

import re
from pathlib import Path

from geoseg.core.errors import OutputError, first_few
from geoseg.io.paths import SIDECARS, sidecar_base

__all__ = [
    "CHANGE_FILES",
    "CHANGE_MARKS",
    "MARK_CONTENTS",
    "OS_CLUTTER",
    "REPORT_FILES",
    "REPORT_MARKS",
    "RUN_FILES",
    "RUN_MARKS",
    "TILE_FILES",
    "check_contents",
    "foreign_names",
    "is_clutter",
    "is_mark",
]

RUN_FILES = tuple(
    "classes.tif confidence.tif polygons.gpkg polygons.geojson classes.qml polygons.qml areas.csv preview.png run.json "
    "clouds.tif clouds.qml".split()
)
"""What ``geoseg run`` writes into OUTDIR (the CLI contract); a run folder holding anything else is not replaced."""
RUN_MARKS = ("run.json",)
"""Files that mark a folder as written by ``geoseg run`` (``batch.json`` marks a batch, ``tile.json`` a chip folder)."""
CHANGE_FILES = tuple(
    "transitions.tif transitions.qml changes.gpkg changes.geojson changes.qml matrix.csv preview.png "
    "before_classes.tif after_classes.tif summary.json".split()
)
"""What ``geoseg change`` writes into OUTDIR (the class maps only when it predicted them)."""
CHANGE_MARKS = ("summary.json",)
"""The file that marks a folder as written by ``geoseg change``."""
REPORT_FILES = tuple("metrics.json per_class.csv confusion.png errors.tif errors.qml".split())
"""What ``geoseg evaluate --report DIR`` writes into DIR (the CLI contract)."""
REPORT_MARKS = ("metrics.json",)
"""The file that marks a folder as an evaluation report (written last, with ``geoseg_version``)."""
TILE_FILES = ("images", "masks", "index.gpkg", "classes.json", "tile.json")
"""What ``geoseg tile`` writes into a chip folder; ``images`` and ``masks`` hold only its chips (``SCENE_rNNNN_cNNNN.tif``)."""
CHIP_SUFFIX = ".tif"
"""The files of a chip folder's ``images`` and ``masks``."""
MARK_CONTENTS: dict[str, tuple[str, ...]] = {
    "run.json": RUN_FILES,
    "summary.json": CHANGE_FILES,
    "metrics.json": REPORT_FILES,
    "tile.json": TILE_FILES,
}
"""For a mark, everything its folder may hold (hidden temporaries aside); marks not listed allow anything."""
_CHIP_FOLDERS = {"tile.json": ("images", "masks")}
_CHIP_NAME = re.compile(r"_r\d{4,}_c\d{4,}" + re.escape(CHIP_SUFFIX) + "$")


OS_CLUTTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", "ehthumbs.db"})
"""Files the file manager (macOS Finder, Windows Explorer) drops into any folder it shows: not the user's data."""


def is_clutter(name: str) -> bool:
    """Whether ``name`` is a file manager's own (:data:`OS_CLUTTER`, macOS's ``._NAME`` companions).

    Example:
        >>> is_clutter(".DS_Store"), is_clutter("Thumbs.db"), is_clutter("notes.txt")
        (True, True, False)
    """
    return name in OS_CLUTTER or name.startswith("._")


def is_mark(path: Path) -> bool:
    """True when ``path`` is a record geoseg wrote (run.json, batch.json: ``geoseg_version``; tile.json: its format).

    A user's own file of the same name does not make a folder geoseg's.

    Example:
        >>> is_mark(Path("/tmp/surely/not/there/run.json"))
        False
    """
    import json

    try:
        if path.stat().st_size > 64 << 20:
            return False
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and ("geoseg_version" in record or str(record.get("format", "")).startswith("geoseg-"))


def foreign_names(folder: Path, names: list[str], marks: tuple[str, ...]) -> list[str] | None:
    """What ``folder`` holds that geoseg did not write (sorted), or None when it holds none of ``marks``.

    A chip folder's ``images`` and ``masks`` are looked into: anything there
    but chips is named as ``images/notes.txt``.

    Example:
        >>> foreign_names(Path("/tmp/surely/not/there"), ["notes.txt"], ("run.json",)) is None
        True
    """
    found = [m for m in marks if m in names and is_mark(folder / m)]
    if not found:
        return None
    allowed = [set(MARK_CONTENTS[m]) for m in found if m in MARK_CONTENTS]
    other = [n for n in names if not n.startswith(".") and not is_clutter(n) and not all(sidecar_base(n) in a for a in allowed)]
    for sub in (s for m in found for s in _CHIP_FOLDERS.get(m, ()) if s in names):
        inside = (folder / sub).iterdir() if (folder / sub).is_dir() else iter([])
        other += [f"{sub}/{p.name}" for p in inside if not p.name.startswith(".") and not _chip_file(p)]
    return sorted(other)


def _chip_file(path: Path) -> bool:
    """A chip (or GDAL's sidecar of one) as ``geoseg tile`` names it: ``SCENE_rNNNN_cNNNN.tif``."""
    name = sidecar_base(path.name) if path.name.endswith(SIDECARS) else path.name
    return _CHIP_NAME.search(name) is not None and path.is_file()


def check_contents(folder: Path, names: list[str], overwrite: bool, marks: tuple[str, ...]) -> None:
    """The ownership rule: a folder may be (re)built when empty, or when geoseg's own and ``overwrite``.

    Example:
        >>> check_contents(Path("/tmp/empty"), [], False, ("run.json",))  # nothing there: may be built
    """
    names = [n for n in names if not is_clutter(n)]  # a folder Finder or Explorer showed is still empty
    if not names:
        return
    foreign = foreign_names(folder, names, marks)
    if foreign == []:
        if not overwrite:
            raise OutputError(f"output folder {folder} already exists: use --overwrite to replace it")
        return
    marked = (*MARK_CONTENTS, "batch.json")  # every mark: batch.json's folder may hold anything
    other = [m for m in marked if m not in marks and m in names and is_mark(folder / m)]
    if other:
        raise OutputError(
            f"output folder {folder} holds the outputs of another geoseg command ({other[0]}): choose a new or empty folder"
        )
    nested = [f"{n}/{m}" for n in foreign or [] for m in marked if is_mark(folder / n / m)]
    if nested:  # an evaluation report written into a run folder: geoseg's, but not this folder's to replace
        raise OutputError(
            f"output folder {folder} holds another geoseg output ({nested[0]}): move it out of the folder to replace "
            "the folder, or choose another folder"
        )
    listed = sorted(names) if foreign is None else foreign
    shown = first_few(listed)
    raise OutputError(
        f"output folder {folder} holds files geoseg did not write ({shown}): choose a new or empty folder "
        f"(geoseg replaces only folders it wrote, marked by {marks[0]}, and only with --overwrite)"
    )
