"""Errors raised by geoseg.

Every error geoseg raises on purpose derives from :class:`GeosegError`, and
also from the matching built-in exception, so callers may catch either. The
message is one sentence that names the file or value at fault and the fix;
the CLI prints it as one line on stderr.
"""

from __future__ import annotations


class GeosegError(Exception):
    """Root of geoseg's errors."""


class InputError(GeosegError, ValueError):
    """An option or argument has a value geoseg cannot use."""


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
