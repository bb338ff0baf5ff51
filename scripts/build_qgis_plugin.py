"""Build the QGIS plugin zip (Plugins > Manage and Install Plugins > Install from ZIP) from qgis_plugin/geoseg_qgis.

The zip holds one top folder, ``geoseg_qgis/``, with the plugin's files as they
are in the source tree, except that ``metadata.txt`` gets the project's version
from pyproject.toml. Python caches are left out; entries carry a fixed date, so
the same sources give the same zip. Plain Python (zipfile, pathlib): it needs
neither the venv nor QGIS and runs on Windows too.

Example:
    python scripts/build_qgis_plugin.py                     # dist/geoseg-qgis.zip
    python scripts/build_qgis_plugin.py -o /tmp/plugin.zip
    python scripts/build_qgis_plugin.py --icon              # redraw qgis_plugin/geoseg_qgis/icon.png
"""

from __future__ import annotations

import argparse
import os
import re
import struct
import sys
import zipfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "qgis_plugin" / "geoseg_qgis"
DEFAULT_OUTPUT = ROOT / "dist" / "geoseg-qgis.zip"
DATE = (2020, 1, 1, 0, 0, 0)  # fixed entry dates: the same sources give the same zip
SKIP_DIRS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}


def project_version(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The ``version`` of the ``[project]`` table (read without tomllib, which Python 3.10 lacks)."""
    section = ""
    for line in pyproject.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
            continue
        found = re.match(r'version\s*=\s*"([^"]+)"', stripped)
        if section == "[project]" and found:
            return found.group(1)
    raise SystemExit(f"build_qgis_plugin: no version in the [project] table of {pyproject}")


def plugin_files(folder: Path = PLUGIN) -> list[Path]:
    """The plugin's files, sorted, without caches and hidden files."""
    files = []
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if path.is_dir() or any(p in SKIP_DIRS or p.startswith(".") for p in parts) or path.suffix in SKIP_SUFFIXES:
            continue
        files.append(path)
    return files


def with_version(metadata: str, version: str) -> str:
    """``metadata.txt`` with its ``version=`` line set to ``version``."""
    text, count = re.subn(r"(?m)^version\s*=.*$", f"version={version}", metadata)
    if count != 1:
        raise SystemExit(f"build_qgis_plugin: {PLUGIN / 'metadata.txt'} needs exactly one version= line")
    return text


def build(output: Path = DEFAULT_OUTPUT, folder: Path = PLUGIN) -> Path:
    """Write the plugin zip to ``output`` (under a temporary name first, then renamed); return ``output``."""
    version = project_version()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f"{output.name}.partial.{os.getpid()}")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in plugin_files(folder):
                name = f"{folder.name}/{path.relative_to(folder).as_posix()}"
                data = path.read_bytes()
                if name == f"{folder.name}/metadata.txt":
                    data = with_version(data.decode("utf-8"), version).encode("utf-8")
                info = zipfile.ZipInfo(name, DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return output


# the icon: land-cover patches in the default model's class colours, drawn without any imaging library -----------

COLOURS = ["#1b7837", "#f6e8c3", "#a6d96a", "#2166ac", "#d6604d", "#8c6d31"]
SEEDS = [(14, 16), (44, 10), (30, 34), (54, 40), (12, 50), (40, 56)]


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _pixel(x: float, y: float, size: int) -> tuple[int, int, int, int]:
    """One pixel of the icon: a rounded square of Voronoi patches with dark borders between them."""
    corner = size * 0.16
    cx, cy = min(max(x, corner), size - corner), min(max(y, corner), size - corner)
    if (x - cx) ** 2 + (y - cy) ** 2 > corner**2:
        return 0, 0, 0, 0
    scale = size / 64
    distances = sorted((((x - sx * scale) ** 2 + (y - sy * scale) ** 2) ** 0.5, i) for i, (sx, sy) in enumerate(SEEDS))
    (near, index), (second, _) = distances[0], distances[1]
    if second - near < 1.6 * scale or min(x, y, size - x, size - y) < 2 * scale:
        return 38, 38, 38, 255
    return (*_rgb(COLOURS[index]), 255)


def png(size: int = 64) -> bytes:
    """The icon as PNG bytes (RGBA, 4x4 supersampled)."""
    rows = []
    for y in range(size):
        row = bytearray([0])  # filter type 0
        for x in range(size):
            samples = [_pixel(x + (i + 0.5) / 4, y + (j + 0.5) / 4, size) for i in range(4) for j in range(4)]
            alpha = sum(s[3] for s in samples)
            colour = [sum(s[k] * s[3] for s in samples) // alpha if alpha else 0 for k in range(3)]
            row += bytes([*colour, alpha // len(samples)])
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help=f"zip to write (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--icon", action="store_true", help="redraw the plugin's icon.png instead of building the zip")
    args = parser.parse_args(argv)
    if args.icon:
        (PLUGIN / "icon.png").write_bytes(png())
        print(PLUGIN / "icon.png")
        return 0
    print(build(args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
