"""One-line messages for errors: the same wording for a command's error and a batch scene's failure reason."""

from __future__ import annotations

import errno

from geoseg.core.errors import GeosegError

__all__ = ["error_message", "is_read_failure"]


def is_read_failure(exc: BaseException) -> bool:
    """rasterio's "Read failed" for pixels GDAL cannot decode (the cause names the file and band).

    Example:
        >>> is_read_failure(ValueError("Read failed"))
        False
    """
    from rasterio.errors import RasterioIOError

    return isinstance(exc, RasterioIOError) and str(exc).startswith("Read failed")


def error_message(exc: BaseException) -> str | None:
    """The one-line message geoseg shows for ``exc``, or None when it is not an error geoseg knows how to explain.

    Known are geoseg's own errors (their message), pixels GDAL cannot decode (a damaged or truncated file, or a
    VRT's source file that is missing) and a full disk; the CLI words anything else as unexpected, a batch scene's
    reason as the error's first line.

    Example:
        >>> error_message(OSError(28, "No space left on device", "c.tif"))
        'no space left on the device writing c.tif: free disk space or write to another folder'
        >>> error_message(KeyError("x")) is None
        True
    """
    if isinstance(exc, GeosegError):
        message = str(exc)
    elif is_read_failure(exc):
        detail = str(exc.__cause__ or exc).splitlines()[0]
        missing, _, reason = detail.rpartition(": ")
        if missing and reason == "No such file or directory":  # a VRT's source, gone since the VRT was built
            return f"cannot read pixels: a source file of the scene is missing: {missing}; restore it, or build the scene again"
        message = (
            f"cannot read pixels ({detail}): the file is damaged or truncated; copy or export it "
            "again (gdalinfo -checksum FILE shows the damage)"
        )
    elif isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = f" writing {exc.filename}" if exc.filename else ""
        message = f"no space left on the device{where}: free disk space or write to another folder"
    else:
        return None
    return message.splitlines()[0] if message else type(exc).__name__
