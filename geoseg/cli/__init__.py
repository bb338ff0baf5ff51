"""The ``geoseg`` command: one click group, one thin module per command."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import traceback
from typing import Any

import click

from geoseg.cli.progress import INTERRUPTED
from geoseg.core.errors import OptionError


class _Group(click.Group):
    """Loads each command when it runs (:data:`COMMANDS`); turns errors into one line on stderr and an exit code:
    2 for an :class:`~geoseg.core.errors.OptionError` (a bad option value, a usage error like click's own), else 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        import importlib

        module, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        _terminate_like_interrupt()
        _stop_with_stdin()
        _tolerant_output()
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:  # a command that keeps finished work (train's epochs, a batch's scenes) says so
            note = ctx.meta.get(INTERRUPTED, "no output was changed")
            click.echo(f"geoseg: interrupted; {note() if callable(note) else note}", err=True)
            sys.exit(130)
        except BrokenPipeError:  # `geoseg info ... | head`: the reader has gone; say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
            if ctx.meta.get("geoseg.debug"):  # meta is shared with the subcommand's context
                traceback.print_exc()
            from geoseg.flows.messages import error_message

            message = error_message(exc) or f"unexpected {type(exc).__name__}: {exc} (run again with --debug for the traceback)"
            click.echo(f"geoseg: error: {message.splitlines()[0] if message else type(exc).__name__}", err=True)
            sys.exit(2 if isinstance(exc, OptionError) else 1)  # a bad option value is a usage error, as click's own


def _tolerant_output() -> None:
    """A character the output's encoding lacks (a class named "łąka", info's "→", redirected to a file on Windows,
    cp1252) is written escaped instead of ending the command with a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


_STOPPING = threading.Event()
"""Set when a stop (SIGTERM, or the end of stdin) was turned into Ctrl-C: a second one would cut its cleanup short."""

STOP_WITH_STDIN = "GEOSEG_STOP_WITH_STDIN"
"""Set to 1 by a program that drives geoseg (the QGIS plugin): closing geoseg's stdin stops it as Ctrl-C does, the
way a cancel reaches it on Windows (no console to send Ctrl+Break through) and when the program itself ends."""


def _stop_with_stdin() -> None:
    """With :data:`STOP_WITH_STDIN` set, watch stdin in a thread: at its end, interrupt the command like Ctrl-C."""
    if os.environ.pop(STOP_WITH_STDIN, "") != "1" or threading.current_thread() is not threading.main_thread():
        return  # popped: processes geoseg starts do not inherit it
    import _thread

    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # no stdin at all (pythonw): nothing to watch
        return

    def watch() -> None:
        try:  # os.read holds no lock of sys.stdin's buffer: the interpreter ends normally around this thread
            while os.read(fd, 4096):
                pass
        except OSError:  # not readable: no way to be told, so never stopped this way
            return
        if not _STOPPING.is_set():
            _STOPPING.set()
            _thread.interrupt_main()

    threading.Thread(target=watch, name="geoseg-stdin", daemon=True).start()


def _terminate_like_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so temporary outputs are removed and existing ones kept."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return

    def handler(signum: int, frame: object) -> None:
        if _STOPPING.is_set():  # already stopping (stdin closed too, or a second SIGTERM): let the cleanup finish
            return
        _STOPPING.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the version is read from the package metadata only when asked (``importlib.metadata`` costs
    about 30 ms, a tenth of ``geoseg info``'s start-up)."""
    if not value or ctx.resilient_parsing:
        return
    from geoseg.core.version import __version__

    click.echo(f"geoseg, version {__version__}")
    ctx.exit()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version, help="Show the version and exit."
)
def main() -> None:
    """Land-cover segmentation of satellite GeoTIFFs.

    A scene is cut into overlapping chips on one grid, a segmentation model
    labels every pixel, and the chips are stitched back into one seamless,
    georeferenced class map. Run `geoseg COMMAND --help` for each command.
    """


COMMANDS: dict[str, str] = {
    "run": "geoseg.cli.run:run",
    "predict": "geoseg.cli.predict:predict",
    "vectorize": "geoseg.cli.vectorize:vectorize",
    "tile": "geoseg.cli.tile:tile",
    "train": "geoseg.cli.train:train",
    "evaluate": "geoseg.cli.evaluate:evaluate",
    "export": "geoseg.cli.export:export",
    "info": "geoseg.cli.info:info",
    "change": "geoseg.cli.change:change",
}
"""The commands, by name: ``module:attribute`` of each click command, imported only when that command runs
(``geoseg vectorize`` never imports the inference code). A new command is one module and one entry."""
