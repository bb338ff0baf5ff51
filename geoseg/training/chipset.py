"""``geoseg tile``: a georeferenced chip dataset (image and mask GeoTIFFs plus a footprint index).

CHIP_DIR holds ``images/`` and ``masks/`` (same file names), ``index.gpkg``
(layer ``chips``: the chip file's footprint, file names, position in the
scene, labeled share), ``classes.json`` (class table and label values) and
``tile.json`` (the scenes' grids). Chips of a scene smaller than a chip reach
past its edge: nodata there (the scene's nodata value, else the chip's mask)
and 255 in the masks. Training can read a chip dir: the chips of each scene
are mosaicked back in place as VRTs, so the same spatial split applies.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from geoseg.core.classes import IGNORE_INDEX
from geoseg.core.errors import InputError, OptionError
from geoseg.core.labels import LabelMap
from geoseg.core.options import Overlap
from geoseg.io.mosaic import vrt_source
from geoseg.io.sources import default_resolution

__all__ = ["ChipClasses", "TileResult", "chip_mosaics", "tile"]

_GDAL_TYPES = {
    "uint8": "Byte",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
    "int8": "Int8",
}


@dataclass
class TileResult:
    """What :func:`tile` wrote."""

    chip_dir: Path
    written: int
    skipped_unlabeled: int
    skipped_empty: int


TILE_MARKS = ("tile.json",)
"""The file that marks a chip folder as written by ``geoseg tile``."""


def _chip_profile(ds: Any, transform: Any, size: int, count: int, dtype: str, nodata: Any) -> dict[str, Any]:
    return {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": count,
        "dtype": dtype,
        "crs": ds.crs,
        "transform": transform,
        "nodata": nodata,
        "compress": "deflate",
        "tiled": size % 16 == 0 and size >= 16,
        "blockxsize": min(256, size),
        "blockysize": min(256, size),
    }


def _read_raw(ds: Any, chip: Any) -> tuple[np.ndarray, np.ndarray]:
    """A chip's bands in the scene's dtype and its validity; nothing is invented past the scene's edge.

    A chip of a scene smaller than a chip reaches past its right or bottom
    edge: those pixels are invalid and hold the scene's nodata value (0
    without one, or when its type cannot hold it; the chip's mask then marks
    them, :func:`_needs_mask`), and its labels are 255 there (:meth:`_ChipWriter._mask`).
    """
    from rasterio.dtypes import in_dtype_range

    size, dtype = int(chip.window.width), ds.dtypes[0]
    fill = ds.nodata if ds.nodata is not None and in_dtype_range(ds.nodata, dtype) else 0
    data = np.full((ds.count, size, size), fill, dtype=dtype)
    valid = np.zeros((size, size), dtype=bool)
    rows, cols = chip.inside
    data[:, rows, cols] = ds.read(window=chip.valid_window)
    valid[rows, cols] = ds.dataset_mask(window=chip.valid_window) > 0
    return data, valid


def _needs_mask(data: np.ndarray, valid: np.ndarray, nodata: Any) -> bool:
    """Whether a chip needs a mask: some invalid pixel does not hold the nodata value in every band."""
    if valid.all():
        return False
    if nodata is None:
        return True
    marked = np.isnan(data).all(0) if np.isnan(nodata) else (data == nodata).all(0)
    return bool((~valid & ~marked).any())


def _extent(chip: Any) -> Any:
    """The footprint of the whole chip file (also where it reaches past the scene), in the scene's CRS."""
    import shapely

    size = int(chip.window.width)
    xs, ys = chip.transform * (np.array([0, size, size, 0]), np.array([0, 0, size, size]))
    return shapely.box(xs.min(), ys.min(), xs.max(), ys.max())


def tile(
    image: str | os.PathLike,
    chip_dir: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    label_field: str | None = None,
    chip_size: int = 256,
    overlap: str | float = 0,
    min_labeled: float = 0.0,
    classes: LabelMap | None = None,
    overwrite: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    buffer: float | None = None,
) -> TileResult:
    """Cut ``image`` (and its labels) into chips on the grid of :func:`geoseg.make_grid`.

    Chips without any valid pixel, and with labels, chips whose labeled share
    is below ``min_labeled``, are skipped. ``buffer`` (metres) turns the
    labels' lines and points, of every class, into corridors and discs
    (without it they are left out, or refused when the labels hold nothing else).

    Example:
        >>> tile("scene.tif", "chips", labels="labels.gpkg", label_field="fclass", min_labeled=0.1)  # doctest: +SKIP
        >>> tile("scene.tif", "road_chips", labels="roads.gpkg", label_field="highway", buffer=5)  # doctest: +SKIP
    """
    from geoseg.core.grid import make_grid
    from geoseg.core.labels import check_buffer
    from geoseg.io.label_files import SceneGrid, open_labels
    from geoseg.io.outputs import atomic_folder, check_outdir
    from geoseg.io.raster import gdal_env, open_scene

    out = Path(chip_dir)
    if not 0.0 <= min_labeled <= 1.0:
        raise OptionError(f"--min-labeled {min_labeled} must lie in [0, 1], e.g. 0.1 for 10% labeled pixels")
    buffer = None if buffer is None else check_buffer(buffer, "--buffer", OptionError)
    Overlap.parse(overlap).pixels(chip_size, OptionError)  # both are options here: a usage error, refused first
    check_outdir(out, [image, labels], overwrite, marks=TILE_MARKS)
    stem = Path(str(image)).stem
    with gdal_env(), open_scene(image) as ds:
        grid = make_grid(ds.width, ds.height, chip_size=chip_size, overlap=overlap, transform=ds.transform)
        source = None if labels is None else open_labels(labels, SceneGrid.of(ds), label_field, classes, buffer=buffer)
        try:
            with atomic_folder(out, overwrite, marks=TILE_MARKS) as tmp:
                writer = _ChipWriter(ds, source, tmp, stem, chip_size, min_labeled)
                for n, chip in enumerate(grid):
                    if writer.write(chip) and progress:
                        progress("tile", n + 1, len(grid))
                writer.finish(image, overlap, buffer)
        finally:
            if source is not None:
                source.close()
    return TileResult(out, len(writer.rows), writer.unlabeled, writer.empty)


class _ChipWriter:
    """Writes the chips of one scene into a chip folder and, at the end, its index, tile.json and classes.json."""

    def __init__(self, ds: Any, source: Any, folder: Path, stem: str, chip_size: int, min_labeled: float) -> None:
        self.ds, self.source, self.folder, self.stem = ds, source, folder, stem
        self.chip_size, self.min_labeled = chip_size, min_labeled
        self.rows: list[dict[str, Any]] = []
        self.unlabeled = self.empty = 0
        (folder / "images").mkdir()
        (folder / "masks").mkdir()

    def _mask(self, chip: Any, valid: np.ndarray) -> tuple[np.ndarray | None, float]:
        """The chip's class ids (unlabeled and invalid = 255) and labeled share; no mask without labels."""
        if self.source is None:
            return None, 0.0
        mask = self.source.read(chip.window)
        mask[~valid] = IGNORE_INDEX  # nodata, and past the scene's edge: never a label
        return mask, float((mask != IGNORE_INDEX).mean())

    def write(self, chip: Any) -> bool:
        """Write one chip's image (and mask); False when it is skipped as nodata or as unlabeled."""
        import rasterio

        from geoseg.core.classes import colormap

        ds = self.ds
        data, valid = _read_raw(ds, chip)
        if not valid.any():
            self.empty += 1
            return False
        mask, share = self._mask(chip, valid)
        if mask is not None and (share < self.min_labeled or share == 0):
            self.unlabeled += 1
            return False
        name = f"{self.stem}_r{chip.row:04d}_c{chip.col:04d}.tif"
        prof = _chip_profile(ds, chip.transform, self.chip_size, ds.count, ds.dtypes[0], ds.nodata)
        with rasterio.open(self.folder / "images" / name, "w", **prof) as dst:
            dst.write(data)
            dst.descriptions = ds.descriptions
            if _needs_mask(data, valid, ds.nodata):
                dst.write_mask(valid.astype(np.uint8) * 255)
        row = {
            "image": f"images/{name}",
            "scene": self.stem,
            "row": chip.row,
            "col": chip.col,
            "x_off": chip.x0,
            "y_off": chip.y0,
            "geometry": _extent(chip),  # the chip file's extent, as every chip of a larger scene
        }
        if mask is not None:
            mprof = _chip_profile(ds, chip.transform, self.chip_size, 1, "uint8", IGNORE_INDEX)
            with rasterio.open(self.folder / "masks" / name, "w", **mprof) as dst:
                dst.write_colormap(1, colormap(self.source.label_map.classes))
                dst.write(mask, 1)
            row |= {"mask": f"masks/{name}", "labeled": round(share, 4)}
        self.rows.append(row)
        return True

    def finish(self, image: str | os.PathLike, overlap: str | float, buffer: float | None = None) -> None:
        """Write index.gpkg (layer chips), tile.json (with the buffer of lines and points) and, with labels, classes.json."""
        import geopandas as gpd

        ds = self.ds
        crs = ds.crs.to_wkt()
        rows = self.rows
        frame = (
            gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
            if rows
            else gpd.GeoDataFrame({"image": []}, geometry=[], crs=crs)
        )
        frame.to_file(
            self.folder / "index.gpkg", layer="chips", driver="GPKG", engine="pyogrio", VERSION="1.2"
        )  # no warning in GDAL 3.6
        scene = {
            "name": self.stem,
            "source": str(image),
            "width": ds.width,
            "height": ds.height,
            "transform": list(ds.transform)[:6],
            "crs": crs,
            "dtype": ds.dtypes[0],
            "nodata": ds.nodata,
            "bands": [d or f"band_{i + 1}" for i, d in enumerate(ds.descriptions)],
        }
        meta = {
            "format": "geoseg-chips/1",
            "chip_size": self.chip_size,
            "overlap": str(overlap),
            "buffer": buffer,
            "resolution": default_resolution(),  # the grid of a multi-file scene (--resolution), None: its finest
            "scenes": [scene],
        }
        (self.folder / "tile.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        if self.source is not None:
            lm = self.source.label_map
            table = [{"id": c.id, "name": c.name, "color": c.color, "values": lm.values_of(c.id)} for c in lm.classes]
            (self.folder / "classes.json").write_text(json.dumps(table, indent=2), encoding="utf-8")


def _vrt(
    scene: dict[str, Any],
    files: list[tuple[str, int, int]],
    size: int,
    bands: list[str],
    dtype: str,
    nodata: Any,
    root: Path,
    mask: bool,
) -> str:
    t = scene["transform"]
    gt = f"{t[2]!r}, {t[0]!r}, {t[1]!r}, {t[5]!r}, {t[3]!r}, {t[4]!r}"
    parts = [
        f'<VRTDataset rasterXSize="{scene["width"]}" rasterYSize="{scene["height"]}">',
        f"  <SRS>{escape(scene['crs'])}</SRS>",
        f"  <GeoTransform>{gt}</GeoTransform>",
    ]

    def sources(band: int, lut: str | None = None) -> list[str]:
        return [line for name, x, y in files for line in vrt_source(str(root / name), False, band, (size, size), (x, y), lut=lut)]

    for b, desc in enumerate(bands, start=1):
        parts.append(f'  <VRTRasterBand dataType="{_GDAL_TYPES.get(dtype, "Float32")}" band="{b}">')
        parts.append(f"    <Description>{escape(desc)}</Description>")
        if nodata is not None:
            parts.append(f"    <NoDataValue>{nodata!r}</NoDataValue>")
        parts += sources(b)
        parts.append("  </VRTRasterBand>")
    if mask:  # pixels outside every chip are invalid (not zeros to learn from)
        if nodata is None:  # each chip's own mask: a masked scene's invalid pixels stay invalid
            masks = [line.replace("<SourceBand>1<", "<SourceBand>mask,1<") for line in sources(1)]
        else:  # valid wherever a chip is: the readers' nodata rule applies beside it
            masks = sources(1, "0:255,255:255")
        parts += [
            "  <MaskBand>",
            '    <VRTRasterBand dataType="Byte">',
            *masks,
            "    </VRTRasterBand>",
            "  </MaskBand>",
        ]
    parts.append("</VRTDataset>")
    return "\n".join(parts)


@dataclass
class ChipClasses(LabelMap):
    """A chip folder's class table: its masks hold class ids (the ``values`` looked up), and ``source_values`` keeps
    the label values each class came from (CHIP_DIR/classes.json), which :meth:`values_of` gives.

    Example:
        >>> table = ChipClasses.of([{"id": 0, "name": "forest", "color": "#00aa00", "values": ["forest", "wood"]},
        ...                         {"id": 1, "name": "water", "color": "#0000ff", "values": ["water"]}])
        >>> table.lookup([1, 0]).tolist(), table.values_of(0)
        ([1, 0], ['forest', 'wood'])
    """

    source_values: dict[int, list[str]] = field(default_factory=dict)

    def values_of(self, class_id: int) -> list[str]:
        """The label values (as text, sorted) of the labels the chip folder was tiled from that mean ``class_id``."""
        return sorted(self.source_values.get(class_id, []))

    @classmethod
    def of(cls, table: list[dict[str, Any]], ignore: Sequence[Any] = (), where: str = "classes.json") -> ChipClasses:
        """The classes of a chip folder's ``classes.json`` without those whose label values are all in ``ignore``
        (``data.ignore_values``: their pixels become unlabeled); ignoring some of a class's values is refused."""
        ignored = LabelMap.from_spec([], ignore)
        kept: list[dict[str, Any]] = []
        dropped: list[int] = []
        source: dict[int, list[str]] = {}
        for c in table:
            values = [str(v) for v in c.get("values", [c["name"]])]
            flags = ignored.ignored(values) if values else np.zeros(0, bool)
            if values and flags.all():
                dropped.append(c["id"])
                continue
            if flags.any():
                raise InputError(
                    f"config key data.ignore_values: class {c['name']!r} of {where} holds the values "
                    f"{', '.join(values)} and its masks cannot tell them apart: ignore all of them or tile the labels "
                    "again with those values left out"
                )
            source[len(kept)] = values
            kept.append({"name": c["name"], "color": c["color"], "values": [c["id"]]})
        base = LabelMap.from_spec(kept, dropped)
        return cls(base.classes, base.values, base.ignore, base.buffers, base.background, source)


def chip_mosaics(chip_dir: Path, work_dir: Path, ignore: Sequence[Any] = ()) -> tuple[list[dict[str, Any]], ChipClasses]:
    """VRT mosaics of a chip dir's chips per scene (written to ``work_dir``) and its class table.

    Returns scene entries ``{image, labels, label_field}`` for training and
    the classes (:class:`ChipClasses`: the masks' class ids, and the label
    values they came from); classes whose values are all in ``ignore`` are
    left out and their pixels unlabeled.

    Example:
        >>> scenes, classes = chip_mosaics(Path("chips"), Path(tempfile.mkdtemp()))  # doctest: +SKIP
        >>> scenes[0]["image"]  # doctest: +SKIP
        '/tmp/tmpab12cd/scene_chips.vrt'
    """
    import pyogrio

    meta_path = chip_dir / "tile.json"
    if not meta_path.is_file() or not (chip_dir / "classes.json").is_file():
        raise InputError(
            f"{chip_dir} is not a labeled chip folder written by geoseg tile (no tile.json or "
            "classes.json): run geoseg tile IMAGE --labels LABELS -o CHIP_DIR first"
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    table = json.loads((chip_dir / "classes.json").read_text(encoding="utf-8"))
    index = pyogrio.read_dataframe(chip_dir / "index.gpkg", layer="chips", read_geometry=False)
    size = int(meta["chip_size"])
    scenes = []
    for scene in meta["scenes"]:
        rows = index[index["scene"] == scene["name"]]
        if rows.empty:
            continue
        images = [(str(r.image), int(r.x_off), int(r.y_off)) for r in rows.itertuples()]
        masks = [(str(r.mask), int(r.x_off), int(r.y_off)) for r in rows.itertuples()]
        img = work_dir / f"{scene['name']}_chips.vrt"
        msk = work_dir / f"{scene['name']}_masks.vrt"
        img.write_text(
            _vrt(scene, images, size, scene["bands"], scene["dtype"], scene["nodata"], chip_dir.resolve(), True), encoding="utf-8"
        )
        msk.write_text(_vrt(scene, masks, size, ["labels"], "uint8", IGNORE_INDEX, chip_dir.resolve(), False), encoding="utf-8")
        scenes.append({"image": str(img), "labels": str(msk), "label_field": None})
    if not scenes:
        raise InputError(f"{chip_dir} holds no chips: tile with a lower --min-labeled")
    return scenes, ChipClasses.of(table, ignore, str(chip_dir / "classes.json"))
