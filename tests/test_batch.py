"""Batch runs: several scenes into one OUTDIR, failures recorded, resumable, mosaic and merged polygons."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from affine import Affine
from rasterio.windows import from_bounds

from tests.helpers import random_scene, run, tiny_unet, write_raster

BANDS = ["B02", "B03", "B04", "B08"]


def tiles(folder: Path) -> list[Path]:
    """Three 4-band scenes side by side on one 10 m grid (x offsets 0, 100, 200 px)."""
    folder.mkdir()
    paths = []
    for i in range(3):
        transform = Affine(10.0, 0, 330000.0 + 1000.0 * i, 0, -10.0, 5822040.0)
        paths.append(
            write_raster(folder / f"tile_{i}.tif", random_scene((4, 90, 100), seed=i), transform=transform, descriptions=BANDS)
        )
    return paths


@pytest.mark.slow
def test_batch_records_failures_mosaics_and_resumes(runner, unet_path: Path, tmp_path: Path) -> None:
    scenes = tiles(tmp_path / "in")
    (tmp_path / "in" / "broken.tif").write_text("not a raster")
    out = tmp_path / "out"
    result = run(runner, "run", tmp_path / "in" / "*.tif", "-o", out, "-m", unet_path, "--min-area", 200)
    assert result.exit_code == 3, result.output
    assert "failed: " in result.stderr and "broken.tif is not a raster GDAL can read" in result.stderr
    record = json.loads((out / "batch.json").read_text())
    status = {Path(s["scene"]).name: s["status"] for s in record["scenes"]}
    assert status == {"broken.tif": "failed", "tile_0.tif": "done", "tile_1.tif": "done", "tile_2.tif": "done"}
    assert record["counts"] == {"done": 3, "skipped": 0, "outside": 0, "failed": 1}
    assert not (out / "broken").exists()
    # the mosaic shows every scene's class map in its place
    with rasterio.open(out / "classes.vrt") as vrt:
        assert (vrt.width, vrt.height) == (300, 90) and vrt.nodata == 255 and vrt.colormap(1)[0][3] == 255
        for scene in scenes:
            with rasterio.open(out / scene.stem / "classes.tif") as ds:
                window = from_bounds(*ds.bounds, transform=vrt.transform)
                assert (vrt.read(1, window=window) == ds.read(1)).all()
    merged = pyogrio.read_dataframe(out / "polygons.gpkg", layer="polygons")
    counts = [len(pyogrio.read_dataframe(out / s.stem / "polygons.gpkg", layer="polygons")) for s in scenes]
    assert len(merged) == sum(counts) and set(merged["scene"]) == {s.stem for s in scenes}
    # resume: complete scenes are skipped, the fixed one is done
    stamps = {s.stem: (out / s.stem / "run.json").stat().st_mtime_ns for s in scenes}
    write_raster(
        tmp_path / "in" / "broken.tif",
        random_scene((4, 90, 100), seed=9),
        descriptions=BANDS,
        transform=Affine(10.0, 0, 333000.0, 0, -10.0, 5822040.0),
    )
    result = run(runner, "run", tmp_path / "in" / "*.tif", "-o", out, "-m", unet_path, "--min-area", 200)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "batch.json").read_text())
    assert record["counts"] == {"done": 1, "skipped": 3, "outside": 0, "failed": 0}
    assert {s.stem: (out / s.stem / "run.json").stat().st_mtime_ns for s in scenes} == stamps
    with rasterio.open(out / "classes.vrt") as vrt:
        assert vrt.width == 400
    assert len(pyogrio.read_dataframe(out / "polygons.gpkg", layer="polygons")) > len(merged)


def test_list_file_and_single_model_load(runner, unet_path: Path, tmp_path: Path) -> None:
    scenes = tiles(tmp_path / "in")
    listing = tmp_path / "scenes.txt"
    listing.write_text("# two of them\n" + "\n".join(f"in/{s.name}" for s in scenes[:2]) + "\n")
    result = run(runner, "run", f"@{listing}", "-o", tmp_path / "out", "-m", unet_path)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert [s["status"] for s in record["scenes"]] == ["done", "done"]
    assert all((tmp_path / "out" / s.stem / "run.json").is_file() for s in scenes[:2])


def test_batch_input_errors(runner, unet_path: Path, tmp_path: Path) -> None:
    scenes = tiles(tmp_path / "in")
    result = run(runner, "run", tmp_path / "nothing" / "*.tif", "-o", tmp_path / "out", "-m", unet_path)
    assert result.exit_code == 1 and "matches no file" in result.stderr
    (tmp_path / "other").mkdir()
    twin = tmp_path / "other" / scenes[0].name
    twin.write_bytes(scenes[0].read_bytes())
    result = run(runner, "run", scenes[0], twin, "-o", tmp_path / "out", "-m", unet_path)
    assert result.exit_code == 1 and "would both write OUTDIR/tile_0" in result.stderr
    result = run(runner, "run", "@" + str(tmp_path / "missing.txt"), "-o", tmp_path / "out", "-m", unet_path)
    assert result.exit_code == 1 and "list file" in result.stderr
    assert not (tmp_path / "out").exists()
    assert np.all([len(r.stderr.strip().splitlines()) == 1 for r in [result]])


@pytest.mark.slow
def test_dask_workers_give_the_same_outputs_as_one_process(runner, unet_path: Path, tmp_path: Path) -> None:
    import time

    import pytest

    pytest.importorskip("distributed", reason="Dask is in the dev extra: pip install -e '.[dev]'")
    tiles(tmp_path / "in")
    (tmp_path / "in" / "broken.tif").write_text("not a raster")
    pattern = tmp_path / "in" / "*.tif"
    one = run(runner, "run", pattern, "-o", tmp_path / "one", "-m", unet_path, "--min-area", 200)
    started = time.perf_counter()
    two = run(runner, "run", pattern, "-o", tmp_path / "two", "-m", unet_path, "--min-area", 200, "--workers", 2)
    print("2 Dask workers, 4 scenes:", round(time.perf_counter() - started, 1), "s")
    assert one.exit_code == two.exit_code == 3, two.output
    a = json.loads((tmp_path / "one" / "batch.json").read_text())
    b = json.loads((tmp_path / "two" / "batch.json").read_text())
    assert [(s["folder"], s["status"], s.get("reason")) for s in a["scenes"]] == [
        (s["folder"], s["status"], s.get("reason")) for s in b["scenes"]
    ]
    for i in range(3):
        with (
            rasterio.open(tmp_path / "one" / f"tile_{i}" / "classes.tif") as x,
            rasterio.open(tmp_path / "two" / f"tile_{i}" / "classes.tif") as y,
        ):
            assert (x.read(1) == y.read(1)).all()
        p = pyogrio.read_dataframe(tmp_path / "one" / f"tile_{i}" / "polygons.gpkg", layer="polygons")
        q = pyogrio.read_dataframe(tmp_path / "two" / f"tile_{i}" / "polygons.gpkg", layer="polygons")
        assert len(p) == len(q) and p.geometry.geom_equals_exact(q.geometry, 0).all()
        assert (p.drop(columns="geometry") == q.drop(columns="geometry")).all().all()
        models = [json.loads((tmp_path / d / f"tile_{i}" / "run.json").read_text())["model"] for d in ("one", "two")]
        assert models[0] == models[1] and models[1]["path"] == str(unet_path)
        assert models[1]["sha256"] == hashlib.sha256(unet_path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_unreachable_scheduler_is_a_quick_clear_error(runner, unet_path: Path, tmp_path: Path) -> None:
    import time

    import pytest

    pytest.importorskip("distributed", reason="Dask is in the dev extra: pip install -e '.[dev]'")
    scenes = tiles(tmp_path / "in")
    started = time.perf_counter()
    result = run(runner, "run", *scenes, "-o", tmp_path / "out", "-m", unet_path, "--scheduler", "tcp://127.0.0.1:9")
    assert time.perf_counter() - started < 30
    assert result.exit_code == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_wide_scene_split_into_4_blocks_on_2_workers_equals_one_process(runner, unet_path: Path, tmp_path: Path) -> None:
    import pytest

    pytest.importorskip("distributed", reason="Dask is in the dev extra: pip install -e '.[dev]'")
    folder = tmp_path / "in"
    scenes = tiles(folder)
    wide = write_raster(folder / "wide.tif", random_scene((4, 70, 1024), seed=7), descriptions=BANDS)
    one = run(runner, "run", *scenes, wide, "-o", tmp_path / "one", "-m", unet_path, "--min-area", 200)
    two = run(
        runner,
        "run",
        *scenes,
        wide,
        "-o",
        tmp_path / "two",
        "-m",
        unet_path,
        "--min-area",
        200,
        "--workers",
        2,
        "--block-width",
        256,
    )
    assert one.exit_code == two.exit_code == 0, two.output
    record = json.loads((tmp_path / "two" / "wide" / "run.json").read_text())
    assert record["counts"]["blocks"] == 4 and "predict_blocks" in record["timings_s"]
    assert json.loads((tmp_path / "one" / "wide" / "run.json").read_text())["counts"]["blocks"] == 1
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.name.startswith(".")) == [], "blocks removed"
    for name in ("wide", "tile_0"):
        for raster in ("classes.tif", "confidence.tif"):
            with rasterio.open(tmp_path / "one" / name / raster) as x, rasterio.open(tmp_path / "two" / name / raster) as y:
                assert (x.transform, x.crs, x.colormap(1) if raster == "classes.tif" else None) == (
                    y.transform,
                    y.crs,
                    y.colormap(1) if raster == "classes.tif" else None,
                )
                assert (x.read(1) == y.read(1)).all(), f"{name}/{raster}: same pixels"
                assert x.tags()["GEOSEG_CLASSES"] == y.tags()["GEOSEG_CLASSES"]
        p = pyogrio.read_dataframe(tmp_path / "one" / name / "polygons.gpkg", layer="polygons")
        q = pyogrio.read_dataframe(tmp_path / "two" / name / "polygons.gpkg", layer="polygons")
        assert len(p) == len(q) and p.geometry.geom_equals_exact(q.geometry, 0).all()
        assert (p.drop(columns="geometry") == q.drop(columns="geometry")).all().all()
    with rasterio.open(tmp_path / "one" / "wide" / "classes.tif") as x:
        seams = [x.transform.c + x.transform.a * col for col in (256, 512, 768)]
    bounds = pyogrio.read_dataframe(tmp_path / "two" / "wide" / "polygons.gpkg", layer="polygons").bounds
    for seam in seams:
        assert ((bounds.minx < seam) & (bounds.maxx > seam)).any(), "polygons reach across every block seam"


def test_a_batch_exports_the_model_to_onnx_once(unet_path: Path, tmp_path: Path, monkeypatch) -> None:
    import pytest

    pytest.importorskip("onnxruntime")
    import torch

    import geoseg.model.onnx as onnx_module
    from geoseg.flows.batch import run_batch
    from geoseg.model.factory import load_model

    calls = []
    real = onnx_module.export_onnx
    monkeypatch.setattr(onnx_module, "export_onnx", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = load_model(unet_path)
    result = run_batch(tiles(tmp_path / "in"), tmp_path / "out", model, backend="onnx")
    assert result.counts["done"] == 3 and len(calls) == 1
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # trained further: the next run exports again
    run_batch([tmp_path / "in" / "tile_0.tif"], tmp_path / "out2", model, backend="onnx")
    assert len(calls) == 2


def test_resume_refuses_scenes_made_with_another_model_or_options(runner, unet_path: Path, tmp_path: Path) -> None:
    """A finished scene is skipped only when this run would make the same outputs: same model file, same options."""
    scenes = tiles(tmp_path / "in")[:2]
    out = tmp_path / "out"
    assert run(runner, "run", *scenes, "-o", out, "-m", unet_path).exit_code == 0
    kept = [out / "batch.json", *(out / s.stem / "run.json" for s in scenes)]
    before = [p.read_bytes() for p in kept]
    other = tmp_path / "other.pt"
    tiny_unet(BANDS, 4, pixel_size=10.0).save(other)
    refusals = {
        "--min-area not set (this run: 500.0)": ["-m", unet_path, "--min-area", 500],
        f"made with model {unet_path} (SHA-256 ": ["-m", other],
        "made with model ": [],  # -m default
        "--tta False (this run: True)": ["-m", unet_path, "--tta"],
    }
    for said, extra in refusals.items():
        result = run(runner, "run", *scenes, tmp_path / "in" / "tile_2.tif", "-o", out, *extra)  # a new scene too
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1, result.output
        assert lines[0].startswith(f"geoseg: error: batch {out}: scene tile_0 ({scenes[0]}) was ") and said in lines[0]
        assert lines[0].endswith("use --overwrite to redo all, or another OUTDIR")
        assert [p.read_bytes() for p in kept] == before and not (out / "tile_2").exists(), "refused before any work"
    # how a scene runs is not what it makes: another batch size or device resumes
    result = run(runner, "run", *scenes, "-o", out, "-m", unet_path, "--batch-size", 3, "--device", "cpu")
    assert result.exit_code == 0 and "0 done, 2 skipped" in result.stderr
    # nor what ran the same, spelled otherwise: the model's 64 px chips and 16 px overlap given, the preview's bands
    same = ["--chip-size", 64, "--overlap", 0.25, "--preview-bands", "3,2,1", "--bands", ",".join(BANDS)]
    result = run(runner, "run", *scenes, "-o", out, "-m", unet_path, *same)
    assert result.exit_code == 0 and "0 done, 2 skipped" in result.stderr, result.output
    result = run(runner, "run", *scenes, "-o", out, "-m", unet_path, "--overlap", 0.5)
    assert result.exit_code == 1 and "--overlap not set (this run: 0.5)" in result.stderr


def test_batch_scenes_record_the_model_file_hashed_once(unet_path: Path, tmp_path: Path, monkeypatch) -> None:
    import geoseg.flows.provenance as provenance
    from geoseg.flows.batch import run_batch

    hashed = []
    real = provenance.file_sha256
    monkeypatch.setattr(provenance, "file_sha256", lambda path: hashed.append(path) or real(path))
    result = run_batch(tiles(tmp_path / "in")[:2], tmp_path / "out", str(unet_path))
    sha = hashlib.sha256(unet_path.read_bytes()).hexdigest()
    assert result.counts["done"] == 2 and len(hashed) == 1
    for scene in result.scenes:
        model = json.loads((tmp_path / "out" / scene["folder"] / "run.json").read_text())["model"]
        assert (model["path"], model["sha256"]) == (str(unet_path), sha)
    record = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert (record["model"], record["model_sha256"]) == (str(unet_path), sha)


def test_an_interrupted_batch_shows_its_finished_scenes_done(unet_path: Path, tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C (or SIGTERM, which unwinds the same way) during the second scene: batch.json already says the first is
    done, and names the model as given, as the finished batch does."""
    import geoseg.flows.batch as batch

    def scene(path: str, *args: object, **kwargs: object) -> dict[str, object]:
        if Path(path).stem == "tile_1":
            raise KeyboardInterrupt
        return {"status": "done", "seconds": 0.0}

    monkeypatch.setattr(batch, "run_scene", scene)
    with pytest.raises(KeyboardInterrupt):
        batch.run_batch(tiles(tmp_path / "in"), tmp_path / "out", str(unet_path))
    record = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert [s["status"] for s in record["scenes"]] == ["done", "pending", "pending"]
    assert record["model"] == str(unet_path) and record["model_sha256"] == hashlib.sha256(unet_path.read_bytes()).hexdigest()


def test_a_damaged_scene_fails_in_a_batch_with_the_words_of_a_single_run(runner, unet_path: Path, tmp_path: Path) -> None:
    import rasterio.shutil

    scenes = tiles(tmp_path / "in")
    whole = rasterio.shutil.copy(scenes[1], tmp_path / "whole.tif", driver="GTiff") or tmp_path / "whole.tif"
    damaged = tmp_path / "in" / "damaged.tif"  # CreateCopy writes the header first: it opens, its pixels do not read
    damaged.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    single = run(runner, "run", damaged, "-o", tmp_path / "single", "-m", unet_path)
    assert single.exit_code == 1
    message = single.stderr.strip().removeprefix("geoseg: error: ")
    assert message.startswith("cannot read pixels (damaged.tif, band ") and "damaged or truncated" in message
    result = run(runner, "run", scenes[0], damaged, "-o", tmp_path / "out", "-m", unet_path)
    assert result.exit_code == 3
    reasons = {s["folder"]: s.get("reason") for s in json.loads((tmp_path / "out" / "batch.json").read_text())["scenes"]}
    assert reasons == {"tile_0": None, "damaged": message}
    assert f"geoseg: failed: {damaged}: {message}" in result.stderr.splitlines()


def test_one_file_spelled_two_ways_is_one_scene(tmp_path: Path, monkeypatch) -> None:
    from geoseg.core.errors import InputError
    from geoseg.flows.batch import expand_inputs

    monkeypatch.chdir(tmp_path)
    scenes = tiles(tmp_path / "in")
    spellings = ["in/tile_0.tif", "./in/tile_0.tif", str(scenes[0]), "in/../in/tile_0.tif", "in/tile_1.tif"]
    assert expand_inputs(spellings) == ["in/tile_0.tif", "in/tile_1.tif"]
    url = "/vsicurl/https://example.com/a/x.tif"
    assert expand_inputs([url, url]) == [url]  # remote paths compare as written
    with pytest.raises(InputError, match="would both write OUTDIR/x"):
        expand_inputs([url, "/vsicurl/https://example.com/b/x.tif"])


def test_a_list_file_saved_with_a_byte_order_mark(tmp_path: Path) -> None:
    """Notepad saves UTF-8 with a byte-order mark: it is not part of the first path."""
    from geoseg.flows.batch import expand_inputs

    tiles(tmp_path / "in")
    listing = tmp_path / "scenes.txt"
    listing.write_text("in/tile_0.tif\r\nin/tile_1.tif\r\n", encoding="utf-8-sig")
    assert listing.read_bytes().startswith(b"\xef\xbb\xbf")
    assert expand_inputs([f"@{listing}"]) == [str(tmp_path / "in" / "tile_0.tif"), str(tmp_path / "in" / "tile_1.tif")]


def test_scenes_in_other_crss_say_on_the_console_why_classes_vrt_is_missing(runner, unet_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    a = write_raster(folder / "utm33.tif", random_scene((4, 90, 100)), descriptions=BANDS)
    b = write_raster(folder / "utm32.tif", random_scene((4, 90, 100), seed=1), crs="EPSG:32632", descriptions=BANDS)
    result = run(runner, "run", a, b, "-o", tmp_path / "out", "-m", unet_path)
    assert result.exit_code == 0 and not (tmp_path / "out" / "classes.vrt").exists()
    notes = json.loads((tmp_path / "out" / "batch.json").read_text())["notes"]
    assert notes[0].startswith("classes.vrt not written: the scenes differ in CRS")
    for note in notes:
        assert f"geoseg: note: {note}" in result.stderr.splitlines()


def test_the_mosaic_leaves_out_class_maps_of_another_class_table(unet_path: Path, tmp_path: Path) -> None:
    """Scenes predicted by models with other class tables: no classes.vrt labelled with the first scene's classes,
    and no QGIS style of one table over everyone's polygons."""
    from geoseg.flows.run import run as run_one
    from geoseg.io.mosaic import merge_polygons, mosaic_vrt
    from geoseg.report.styles import polygons_qml

    scenes = tiles(tmp_path / "in")
    other = tmp_path / "other.pt"
    tiny_unet(BANDS, 4, pixel_size=10.0).save(other)
    out = tmp_path / "out"
    run_one(scenes[0], out / "tile_0", str(unet_path))
    run_one(scenes[1], out / "tile_1", str(other))
    maps = [out / "tile_0" / "classes.tif", out / "tile_1" / "classes.tif"]
    assert mosaic_vrt(maps[:1], out / "classes.vrt") == [] and (out / "classes.vrt").exists()
    notes = mosaic_vrt(maps, out / "classes.vrt")
    assert len(notes) == 1 and notes[0].startswith(
        "classes.vrt not written: tile_1/classes.tif has another class table than tile_0/classes.tif"
    )
    assert not (out / "classes.vrt").exists(), "a stale mosaic is removed"
    notes = merge_polygons([m.parent / "polygons.gpkg" for m in maps], out / "polygons.gpkg", style=polygons_qml)
    assert len(notes) == 1 and "different class tables" in notes[0]
    merged = pyogrio.read_dataframe(out / "polygons.gpkg", layer="polygons")
    for m in maps:
        own = pyogrio.read_dataframe(m.parent / "polygons.gpkg", layer="polygons")
        mine = merged[merged["scene"] == m.parent.name]
        assert sorted(zip(mine["class_id"], mine["class_name"])) == sorted(zip(own["class_id"], own["class_name"]))
    with sqlite3.connect(out / "polygons.gpkg") as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'layer_styles'").fetchall() == []


def test_an_existing_path_is_taken_as_written_before_any_glob_or_list(
    runner, unet_path: Path, tmp_path: Path, monkeypatch
) -> None:
    """``scene[1].tif`` and ``@scene.tif`` that exist are one scene each; a glob in a folder named ``[2023]`` looks in it."""
    from geoseg.flows.batch import expand_inputs, is_batch

    monkeypatch.chdir(tmp_path)
    scene = tiles(tmp_path / "in")[0]
    for name in ("scene[1].tif", "@scene.tif"):
        (tmp_path / name).write_bytes(scene.read_bytes())
        assert not is_batch([name]) and expand_inputs([name]) == [name]
    (tmp_path / "[2023]").mkdir()
    (tmp_path / "[2023]" / "x.tif").write_bytes(scene.read_bytes())
    assert is_batch(["[2023]/*.tif"]) and expand_inputs(["[2023]/*.tif"]) == ["[2023]/x.tif"]
    assert not is_batch(["[2023]/x.tif"]) and expand_inputs(["[2023]"]) == ["[2023]"]
    assert is_batch(["in/*.tif"]) and is_batch(["@missing.txt"])  # what does not exist is still a glob or a list
    result = run(runner, "run", "scene[1].tif", "-o", tmp_path / "one", "-m", unet_path)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "one" / "run.json").read_text())["inputs"]["image"] == "scene[1].tif"


def test_a_missing_vrt_source_is_named_as_missing_not_damaged(runner, unet_path: Path, tmp_path: Path) -> None:
    from rasterio.errors import RasterioIOError

    from geoseg.flows.messages import error_message
    from tests.test_trust import write_vrt

    scenes = tiles(tmp_path / "in")
    vrt = write_vrt(tmp_path / "m2.vrt", scenes[:2])
    scenes[1].unlink()
    result = run(runner, "predict", vrt, "-m", unet_path, "-o", tmp_path / "c.tif")
    assert result.exit_code == 1 and not (tmp_path / "c.tif").exists()
    assert result.stderr.strip().splitlines() == [
        f"geoseg: error: a source file of {vrt} is missing: {tmp_path}/in/tile_1.tif; restore it, or build m2.vrt again "
        "from files that exist"
    ]
    with rasterio.open(vrt) as ds, pytest.raises(RasterioIOError) as caught:  # what a reader meets (tile, change)
        ds.read(1)
    message = error_message(caught.value)
    assert message is not None and "damaged" not in message, message
    assert message.startswith("cannot read pixels: a source file of the scene is missing: ") and "tile_1.tif" in message


def class_map(path: Path, transform: Affine, value: int) -> Path:
    """A 10 x 10 geoseg-like class map (colour table) of ``value`` on ``transform``'s grid."""
    path.parent.mkdir(parents=True)
    write_raster(path, np.full((10, 10), value, np.uint8), transform=transform, nodata=255)
    with rasterio.open(path, "r+") as ds:
        ds.write_colormap(1, {0: (0, 0, 0, 255), 1: (255, 0, 0, 255), 2: (0, 255, 0, 255)})
    return path


def test_the_mosaic_says_when_only_the_orientation_differs_and_mosaics_south_up_maps(tmp_path: Path) -> None:
    from geoseg.io.mosaic import mosaic_vrt

    north = class_map(tmp_path / "n" / "classes.tif", Affine(10, 0, 0, 0, -10, 100), 1)
    south = [class_map(tmp_path / f"s{v}" / "classes.tif", Affine(10, 0, 0, 0, 10, 100 * (v - 2)), v) for v in (1, 2)]
    notes = mosaic_vrt([north, south[0]], tmp_path / "classes.vrt")
    assert notes == [
        "classes.vrt not written: s1/classes.tif is south-up and n/classes.tif north-up (same CRS and pixel size, other "
        "orientation), and a mosaic has one; open the scenes' classes.tif side by side, or warp the scenes that are not "
        "north-up first (gdalwarp IN.tif OUT.tif writes north-up)"
    ]
    assert mosaic_vrt(south, tmp_path / "classes.vrt") == []  # south-up maps together: a south-up mosaic
    with rasterio.open(tmp_path / "classes.vrt") as ds:
        assert ds.transform == Affine(10, 0, 0, 0, 10, -100) and ds.shape == (20, 10)
        assert ds.read(1)[:, 0].tolist() == [1] * 10 + [2] * 10


def test_blocks_left_by_an_interrupted_dask_batch_are_removed_before_the_scene_runs(tmp_path: Path) -> None:
    """A batch killed while a wide scene's block tasks ran leaves ``.SCENE.blocks/``; the next batch clears it."""
    from geoseg.flows.dask import clear_blocks

    left = tmp_path / ".wide.blocks"
    left.mkdir()
    (left / "classes_0.tif").write_bytes(b"partial")
    other = tmp_path / ".tile_0.blocks"  # another scene's: not this scene's to remove
    other.mkdir()
    assert clear_blocks(tmp_path / "wide") and not left.exists() and other.is_dir()
    assert not clear_blocks(tmp_path / "wide")  # nothing left: nothing to say


def test_resume_refuses_scenes_cut_to_an_aoi_edited_since(runner, unet_path: Path, tmp_path: Path) -> None:
    """The AOI is compared by its polygons, not its path: edited, the finished scenes are refused; written again
    unchanged (other bytes, same polygons), they resume."""
    import geopandas as gpd
    import shapely

    scenes = tiles(tmp_path / "in")[:2]
    aoi, out = tmp_path / "aoi.gpkg", tmp_path / "out"

    def write_aoi(right: float) -> None:
        frame = gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.box(330100, 5821300, right, 5821900)], crs=32633)
        aoi.unlink(missing_ok=True)
        frame.to_file(aoi, driver="GPKG")

    write_aoi(331900)
    assert run(runner, "run", *scenes, "-o", out, "-m", unet_path, "--aoi", aoi).exit_code == 0
    assert json.loads((out / "tile_0" / "run.json").read_text())["inputs"]["aoi_sha256"]
    write_aoi(331900)  # the same polygon written again: a new file, the same area
    result = run(runner, "run", *scenes, "-o", out, "-m", unet_path, "--aoi", aoi)
    assert result.exit_code == 0 and "0 done, 2 skipped" in result.stderr, result.output
    write_aoi(330600)  # edited: tile_1 would now lie outside it
    result = run(runner, "run", *scenes, "-o", out, "-m", unet_path, "--aoi", aoi)
    assert result.exit_code == 1 and f"cut to --aoi {aoi} as it was before its polygons were changed" in result.stderr


def test_resume_refuses_a_scene_folder_made_from_another_file_of_the_same_name(runner, unet_path: Path, tmp_path: Path) -> None:
    """OUTDIR/tile_0 was made from in/tile_0.tif: in2/tile_0.tif (other pixels), or in/tile_0.tif rewritten since,
    is not that scene, so the batch is refused instead of keeping the other scene's outputs as this one's."""
    import os

    scenes = tiles(tmp_path / "in")[:2]
    out = tmp_path / "out"
    assert run(runner, "run", *scenes, "-o", out, "-m", unet_path).exit_code == 0
    assert json.loads((out / "tile_0" / "run.json").read_text())["inputs"]["image_stamp"]
    result = run(runner, "run", *scenes, "-o", out, "-m", unet_path)
    assert result.exit_code == 0 and "0 done, 2 skipped" in result.stderr  # the same files: resumed
    other = tmp_path / "in2" / "tile_0.tif"
    other.parent.mkdir()
    write_raster(other, random_scene((4, 90, 100), seed=9), transform=Affine(10.0, 0, 330000.0, 0, -10.0, 5822040.0))
    result = run(runner, "run", other, scenes[1], "-o", out, "-m", unet_path)
    assert result.exit_code == 1 and "another file of the same name, or changed since" in result.stderr, result.output
    os.utime(scenes[0], ns=(1, 1))  # the same path, written again since
    result = run(runner, "run", *scenes, "-o", out, "-m", unet_path)
    assert result.exit_code == 1 and f"scene tile_0 ({scenes[0]}) was made from {scenes[0]} as it was then" in result.stderr


def test_a_scene_folder_missing_a_merged_file_runs_again_and_batch_json_says_when_merged(
    runner, unet_path: Path, tmp_path: Path
) -> None:
    """A finished scene whose classes.tif was deleted is not skipped (the mosaic would fail at the end); batch.json's
    ``merged`` is true once classes.vrt and polygons.gpkg hold the finished scenes; a missing --aoi is refused first."""
    scenes = tiles(tmp_path / "in")[:2]
    out = tmp_path / "out"
    assert run(runner, "run", *scenes, "-o", out, "-m", unet_path).exit_code == 0
    assert json.loads((out / "batch.json").read_text())["merged"] is True
    (out / "tile_1" / "classes.tif").unlink()
    result = run(runner, "run", *scenes, "-o", out, "-m", unet_path)
    assert result.exit_code == 0 and "1 done, 1 skipped" in result.stderr, result.output
    assert (out / "tile_1" / "classes.tif").is_file()
    before = (out / "batch.json").read_bytes()
    result = run(runner, "run", *scenes, "-o", out, "-m", unet_path, "--aoi", tmp_path / "missing.gpkg")
    assert result.exit_code == 1 and "missing.gpkg" in result.stderr and (out / "batch.json").read_bytes() == before


def test_a_dask_task_that_did_not_return_is_its_scenes_failure() -> None:
    """A worker killed (for memory) more often than Dask retries raised KilledWorker out of the batch: now the scene
    fails with a reason and the others go on."""
    from geoseg.flows.dask import _outcome

    class KilledWorker(Exception):
        pass

    class Future:
        def result(self):
            raise KilledWorker("Attempted to run task on 3 different workers, but all those workers died")

    entry = _outcome(Future(), "in/b3.tif")
    assert entry["status"] == "failed" and "its Dask worker died while running it" in entry["reason"]


def test_a_scheduler_without_workers_is_one_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    from geoseg.core.errors import InputError
    from geoseg.flows import dask

    class Client:
        closed = False

        def scheduler_info(self):
            return {"workers": {}}

        def wait_for_workers(self, n, timeout):
            raise TimeoutError(f"only 0/{n} workers arrived after {timeout}")

        def close(self):
            Client.closed = True

    with pytest.raises(InputError, match="no Dask worker joined the scheduler tcp://h:8786 in 120 s: start workers"):
        dask._with_workers(Client(), "tcp://h:8786")
    assert Client.closed


def test_workers_and_scheduler_together_are_a_usage_error() -> None:
    from geoseg.core.errors import OptionError
    from geoseg.flows.dask import make_client

    pytest.importorskip("distributed", reason="Dask is in the dev extra: pip install -e '.[dev]'")
    with pytest.raises(OptionError, match="--workers and --scheduler are alternatives"):
        make_client(2, "tcp://127.0.0.1:8786")


def test_scenes_away_from_the_aoi_are_left_out_not_failed(runner, unet_path: Path, tmp_path: Path) -> None:
    """A batch of tiles cut to an area of interest: tiles it does not touch are ``outside`` (exit 0, no folder),
    not failures that make every rerun exit 3."""
    import geopandas as gpd
    import shapely

    scenes = tiles(tmp_path / "in")[:2]  # tile_0 x 330000-331000, tile_1 x 331000-332000
    aoi, out = tmp_path / "aoi.gpkg", tmp_path / "out"
    gpd.GeoDataFrame(geometry=[shapely.box(330100, 5821300, 330600, 5821900)], crs=32633).to_file(aoi)
    for rerun in (False, True):
        result = run(runner, "run", *scenes, "-o", out, "-m", unet_path, "--aoi", aoi)
        assert result.exit_code == 0, result.output
        record = json.loads((out / "batch.json").read_text())
        assert [s["status"] for s in record["scenes"]] == ["skipped" if rerun else "done", "outside"]
        assert "does not overlap the scene" in record["scenes"][1]["reason"] and record["counts"]["outside"] == 1
        assert not (out / "tile_1").exists() and (out / "classes.vrt").is_file()


def test_a_scene_stamp_ignores_what_gis_tools_write_beside_a_scene(tmp_path: Path) -> None:
    """Finder's .DS_Store in a band folder, GDAL's statistics written into a VRT or its .ovr are not another scene;
    a band rewritten is; a remote scene of another path with the same file name is another scene."""
    from geoseg.flows.provenance import _other_scene, scene_stamp
    from tests.test_trust import write_vrt

    folder = tmp_path / "bands"
    folder.mkdir()
    for i, name in enumerate(BANDS):
        write_raster(folder / f"{name}.tif", random_scene((4, 40, 40), seed=i)[i])
    vrt = write_vrt(tmp_path / "s.vrt", [folder / "B02.tif", folder / "B03.tif"])
    stamps = {folder: scene_stamp(folder), vrt: scene_stamp(vrt)}
    (folder / ".DS_Store").write_bytes(b"\0")
    vrt.write_text(vrt.read_text().replace("</VRTDataset>", "<Metadata><MDI key='STATS'>1</MDI></Metadata></VRTDataset>"))
    (tmp_path / "s.vrt.ovr").write_bytes(b"overviews")
    assert {s: scene_stamp(s) for s in stamps} == stamps
    write_raster(folder / "B02.tif", random_scene((4, 40, 40), seed=9)[0])  # in both scenes
    assert all(scene_stamp(s) != stamps[s] for s in stamps)
    record = {"image": "/vsicurl/https://example.com/2023/T33UUU.tif", "image_stamp": None}
    assert _other_scene(record, "/vsicurl/https://example.com/2024/T33UUU.tif")
    assert not _other_scene(record, "/vsicurl/https://example.com/2023/T33UUU.tif")


def test_a_wide_scenes_block_away_from_the_aoi_is_left_out_on_dask_too(unet_path: Path, tmp_path: Path) -> None:
    """A scene split into blocks on Dask: a block the area of interest does not reach says ``outside``, which the
    scene's last task passes on (it said ``failed``, exit 3)."""
    import geopandas as gpd
    import shapely

    from geoseg.core.options import RunOptions
    from geoseg.flows.dask import _dask_block

    scene = tiles(tmp_path / "in")[0]
    far = tmp_path / "far.gpkg"
    gpd.GeoDataFrame(geometry=[shapely.box(100000, 100000, 100500, 100500)], crs=32633).to_file(far)
    entry = _dask_block(str(scene), str(tmp_path / "out" / "tile_0"), str(unet_path), RunOptions().replace(aoi=str(far)), (0, 50))
    assert entry["status"] == "outside" and "does not overlap the scene" in entry["reason"]


def test_a_glob_matching_the_batchs_own_outdir_resumes(runner, unet_path: Path, tmp_path: Path) -> None:
    """``run 'data/*' -o data/results``: the rerun's glob also matches data/results, which is not a scene."""
    folder = tmp_path / "data"
    folder.mkdir()
    tiles(folder / "t")
    for path in (folder / "t").iterdir():
        path.rename(folder / path.name)
    pattern, out = str(folder / "tile_*"), folder / "tile_results"
    assert run(runner, "run", pattern, "-o", out, "-m", unet_path).exit_code == 0
    result = run(runner, "run", pattern, "-o", out, "-m", unet_path)
    assert result.exit_code == 0 and "0 done, 3 skipped" in result.stderr, result.output
