"""Errors raised by geoseg.

Every error geoseg raises on purpose derives from :class:`GeosegError`, and
also from the matching built-in exception, so callers may catch either. The
message is one sentence that names the file or value at fault and the fix;
the CLI prints it as one line on stderr and exits 1 (2 for an
:class:`OptionError`, a usage error).
"""

from __future__ import annotations

from collections.abc import Sequence


def first_few(items: Sequence[object], limit: int = 3) -> str:
    """The first ``limit`` of ``items`` for a message, comma-separated, ``, ...`` when there are more.

    Example:
        >>> first_few(["a.tif", "b.tif", "c.tif", "d.tif"])
        'a.tif, b.tif, c.tif, ...'
    """
    return ", ".join(map(str, items[:limit])) + (", ..." if len(items) > limit else "")


class GeosegError(Exception):
    """Root of geoseg's errors."""


class InputError(GeosegError, ValueError):
    """An option, argument or input has a value geoseg cannot use (one malformed whatever the inputs: :class:`OptionError`)."""


class OptionError(InputError):
    """A usage error: the value of an option or argument is malformed or out of range whatever the inputs are.

    Bad syntax, a value out of range, an unknown choice, two options that
    cannot go together: the same mistake whatever the files, the model and
    the machine, so the CLI exits 2 (a value that does not fit an input file,
    the model or the machine is an :class:`InputError`, exit 1).
    """


class OutsideAreaError(InputError):
    """The area of interest (``--aoi``) does not overlap the scene: in a batch that scene is left out, not failed."""


class BandMismatchError(InputError):
    """The scene's bands do not match what the model expects."""


class ChipSizeError(InputError):
    """A chip size the model's encoder cannot take."""


class RasterError(GeosegError, OSError):
    """A file is not a raster geoseg can use (unreadable, no CRS, no geotransform...)."""


class VectorError(GeosegError, OSError):
    """A vector file cannot be used (unreadable, no CRS, misses the scene...)."""


class ModelError(GeosegError, ValueError):
    """A model file or model description is missing, damaged or not geoseg's."""


class OutputError(GeosegError, OSError):
    """An output cannot be written: it exists, equals an input, or its folder is not writable."""
