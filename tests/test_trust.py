"""The trust catalogue: hostile and odd inputs driven through the CLI in real processes.

Each case asserts the promise: the exit code; on a refusal, exactly one line
on stderr naming the file or value and the fix, no traceback; no new or
changed files outside the intended output; pre-existing files byte-identical.
Families: data loss, hangs and unbounded resources, silently wrong results,
unclear messages, leftovers (the model-file family is in test_model_files.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.helpers import ROOT, random_scene, tiny_unet, write_raster

pytestmark = pytest.mark.skipif(os.name == "nt", reason="FIFOs and POSIX signals")


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry below ``folder`` with a digest of its bytes (or its kind)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            found[key] = "special"
        elif path.is_file():
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[key] = "dir"
    return found


def geoseg(*args: object, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "geoseg", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def refused(result: subprocess.CompletedProcess[str], *words: str, code: int = 1) -> str:
    """The one error line of a refused command, checked: exit ``code`` (2: a bad option value, a usage error), one
    line, names ``words``, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("geoseg: error:"), result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in lines[0], result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def write_vrt(path: Path, sources: list[Path]) -> Path:
    """A VRT mosaic of ``sources`` (GeoTIFFs of the same bands on one north-up grid), paths relative to it, as
    ``gdalbuildvrt`` writes it."""
    from xml.sax.saxutils import escape

    from geoseg.io.mosaic import vrt_source

    infos = []
    for source in sources:
        with rasterio.open(source) as ds:
            infos.append((source, ds.transform, ds.width, ds.height, ds.count, ds.dtypes[0], ds.crs))
    t0, count, dtype, crs = infos[0][1], infos[0][4], infos[0][5], infos[0][6]
    left, top = min(i[1].c for i in infos), max(i[1].f for i in infos)
    width = round((max(i[1].c + i[2] * t0.a for i in infos) - left) / t0.a)
    height = round((min(i[1].f + i[3] * t0.e for i in infos) - top) / t0.e)
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">', f"<SRS>{escape(crs.to_wkt())}</SRS>"]
    lines.append(f"<GeoTransform>{left!r}, {t0.a!r}, 0.0, {top!r}, 0.0, {t0.e!r}</GeoTransform>")
    for band in range(1, count + 1):
        lines.append(f'<VRTRasterBand dataType="{ {"uint8": "Byte", "uint16": "UInt16"}[dtype] }" band="{band}">')
        for source, t, w, h, *_ in infos:
            offset = (round((t.c - left) / t0.a), round((t.f - top) / t0.e))
            lines += vrt_source(os.path.relpath(source, path.parent), True, band, (w, h), offset)
        lines.append("</VRTRasterBand>")
    path.write_text("\n".join([*lines, "</VRTDataset>"]))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_unet(4, 3, mean=[1000.0] * 4, std=[300.0] * 4).save(tmp_path_factory.mktemp("m") / "m.pt")


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    return write_raster(tmp_path / "a.tif", random_scene((4, 80, 80)))


# ---------------------------------------------------------------------------------------------------- data loss


def test_batch_into_a_folder_geoseg_did_not_write_is_refused(model: Path, scene: Path, tmp_path: Path) -> None:
    other = write_raster(tmp_path / "b.tif", random_scene((4, 80, 80), seed=1))
    mydata = tmp_path / "mydata"
    (mydata / "a").mkdir(parents=True)
    (mydata / "a" / "notes.txt").write_text("field notes")
    for name in ("polygons.gpkg", "batch.json", "classes.vrt"):
        (mydata / name).write_text(f"the user's {name}")
    before = snapshot(tmp_path)
    for extra in ([], ["--overwrite"]):
        refused(geoseg("run", scene, other, "-o", mydata, "-m", model, *extra, cwd=tmp_path), "mydata", "did not write")
        assert snapshot(tmp_path) == before


def test_a_batch_scene_folder_holding_user_files_fails_that_scene_only(model: Path, scene: Path, tmp_path: Path) -> None:
    other = write_raster(tmp_path / "b.tif", random_scene((4, 80, 80), seed=1))
    out = tmp_path / "out"
    assert geoseg("run", scene, other, "-o", out, "-m", model, cwd=tmp_path).returncode == 0
    (out / "a" / "run.json").unlink()
    (out / "a" / "notes.txt").write_text("mine")  # a scene folder that is not geoseg's (anymore)
    result = geoseg("run", scene, other, "-o", out, "-m", model, cwd=tmp_path)
    assert result.returncode == 3 and "did not write" in result.stderr
    assert (out / "a" / "notes.txt").read_text() == "mine"
    assert json.loads((out / "batch.json").read_text())["counts"] == {"done": 0, "skipped": 1, "outside": 0, "failed": 1}


def test_two_runs_into_one_new_folder_cannot_both_win(model: Path, tmp_path: Path) -> None:
    scenes = [write_raster(tmp_path / f"s{i}.tif", random_scene((4, 300, 300), seed=i)) for i in range(2)]
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "geoseg", "run", str(s), "-o", str(out), "-m", str(model)],
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for s in scenes
    ]
    errors = [p.communicate(timeout=180)[1] for p in procs]  # also closes the pipes
    results = [(p.returncode, err) for p, err in zip(procs, errors)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, err in results if code == 1)
    assert "out" in loser and ("another geoseg process" in loser or "--overwrite" in loser), loser
    record = json.loads((out / "run.json").read_text())
    winner = scenes[[code for code, _ in results].index(0)]
    assert record["inputs"]["image"] == str(winner) and not list(tmp_path.glob(".out.*"))


def test_overwrite_never_replaces_what_is_not_a_regular_file(model: Path, scene: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "classes.tif"
    os.mkfifo(fifo)
    refused(geoseg("predict", scene, "-m", model, "-o", fifo, "--overwrite", cwd=tmp_path), "classes.tif", "FIFO")
    assert not fifo.is_file() and fifo.exists()


def test_overwrite_never_replaces_a_file_the_scene_is_made_of(model: Path, tmp_path: Path) -> None:
    """A VRT's sources and a band folder's files are inputs too: an output naming one is refused, --overwrite or not,
    in one line naming the scene and the file; a batch OUTDIR holding one is refused too."""
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    a = write_raster(tiles / "a.tif", random_scene((4, 80, 40)))
    b = write_raster(
        tiles / "b.tif", random_scene((4, 80, 40), seed=1), transform=rasterio.Affine(10, 0, 330400, 0, -10, 5822040)
    )
    write_vrt(tmp_path / "mosaic.vrt", [a, b])
    bands = tmp_path / "bands"
    bands.mkdir()
    for i, name in enumerate(["B02", "B03", "B04", "B08"]):
        write_raster(bands / f"{name}.tif", random_scene((4, 80, 80))[i])
    out = tmp_path / "out"  # a batch OUTDIR of geoseg's, holding the file a VRT mosaics
    (out / "x").mkdir(parents=True)
    (out / "batch.json").write_text(json.dumps({"geoseg_version": "0.2.0", "scenes": []}))
    write_vrt(tmp_path / "maps.vrt", [write_raster(out / "x" / "classes.tif", np.zeros((40, 40), np.uint8))])
    before = snapshot(tmp_path)
    for cwd, output, extra in ((tmp_path, "tiles/a.tif", ["--overwrite"]), (tiles, "a.tif", [])):  # however spelled
        scene = os.path.relpath(tmp_path / "mosaic.vrt", cwd)  # without --overwrite too: the reason, not "exists"
        line = refused(geoseg("predict", scene, "-m", model, "-o", output, *extra, cwd=cwd), "mosaic.vrt")
        assert f"-o/--output {output} would replace " in line and "a.tif, a file of the scene" in line, line
    line = refused(geoseg("predict", "mosaic.vrt", "-m", model, "-o", "c.tif", "--confidence", b, "--overwrite", cwd=tmp_path))
    assert line.endswith(
        f"--confidence {b} would replace tiles/b.tif, a file of the scene mosaic.vrt: choose another output path"
    )
    line = refused(geoseg("predict", "bands", "-m", model, "-o", "bands/B04.tif", "--overwrite", cwd=tmp_path))
    assert f"would replace {bands / 'B04.tif'}, a file of the scene bands:" in line, line
    line = refused(geoseg("run", "maps.vrt", a, "-o", "out", "-m", model, "--overwrite", cwd=tmp_path))
    assert "out/x/classes.tif, a file of the scene maps.vrt, lies inside the output folder out" in line, line
    assert snapshot(tmp_path) == before
    for command, folder, mark, name in (
        ("run", "single", "run.json", "classes.tif"),
        ("change", "chg", "summary.json", "changes.gpkg"),
    ):
        (tmp_path / folder).mkdir()  # a folder of geoseg's, holding the file a VRT reads
        (tmp_path / folder / mark).write_text(json.dumps({"geoseg_version": "0.2.0"}))
        write_vrt(tmp_path / f"{folder}.vrt", [write_raster(tmp_path / folder / name, np.zeros((40, 40), np.uint8))])
        args = [f"{folder}.vrt"] * (2 if command == "change" else 1)
        line = refused(geoseg(command, *args, "-o", folder, "-m", model, "--overwrite", cwd=tmp_path))
        assert f"{folder}/{name}, a file of the scene {folder}.vrt, lies inside the output folder {folder}" in line, line


# ---------------------------------------------------------------------------------------- hangs and resources


def test_a_fifo_or_device_as_input_is_refused_before_it_is_opened(model: Path, scene: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)
    refused(geoseg("predict", scene, "-m", fifo, "-o", tmp_path / "c.tif", cwd=tmp_path, timeout=60), "model.pt", "FIFO")
    scene_fifo = tmp_path / "scene.tif"
    os.mkfifo(scene_fifo)
    refused(geoseg("predict", scene_fifo, "-m", model, "-o", tmp_path / "c.tif", cwd=tmp_path, timeout=60), "FIFO")
    refused(geoseg("predict", "/dev/zero", "-m", model, "-o", tmp_path / "c.tif", cwd=tmp_path, timeout=60), "character device")
    for args in (
        ["info", fifo],
        ["export", fifo, "-o", tmp_path / "m.onnx"],
        ["train", fifo, "-o", tmp_path / "run"],
        ["predict", scene, "-m", model, "-o", tmp_path / "c.tif", "--aoi", fifo],
        ["vectorize", scene, "-o", tmp_path / "p.gpkg", "--classes", fifo],
        ["tile", scene, "-o", tmp_path / "chips", "--labels", fifo],
    ):
        refused(geoseg(*args, cwd=tmp_path, timeout=60), "model.pt", "FIFO")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "model.pt", "scene.tif"]


def test_a_huge_virtual_scene_starts_at_once_in_bounded_memory(model: Path, tmp_path: Path) -> None:
    """10^6 x 10^6 pixels: chips are made lazily, progress comes at once and memory stays small."""
    import psutil

    small = write_raster(tmp_path / "small.tif", random_scene((4, 64, 64)), nodata=0)
    size = 1_000_000
    bands = "".join(
        f'<VRTRasterBand dataType="UInt16" band="{b}"><NoDataValue>0</NoDataValue><SimpleSource>'
        f"<SourceFilename>{small}</SourceFilename><SourceBand>{b}</SourceBand>"
        '<SrcRect xOff="0" yOff="0" xSize="64" ySize="64"/><DstRect xOff="0" yOff="0" xSize="64" ySize="64"/>'
        "</SimpleSource></VRTRasterBand>"
        for b in range(1, 5)
    )
    vrt = tmp_path / "huge.vrt"
    vrt.write_text(
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>EPSG:32633</SRS>'
        f"<GeoTransform>330000, 10, 0, 5822040, 0, -10</GeoTransform>{bands}</VRTDataset>"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = ["predict", str(vrt), "-m", str(model), "-o", str(tmp_path / "c.tif"), "--progress", "json"]
    proc = subprocess.Popen([sys.executable, "-m", "geoseg", *args], cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            if line.startswith("{"):
                seen.append(json.loads(line))
                if len(seen) >= 3:
                    break
        assert seen and seen[0]["total"] > 10**7, seen  # every chip counted, none made up front
        rss = psutil.Process(proc.pid).memory_info().rss
        assert rss < 2 * 1024**3, f"{rss / 1e9:.1f} GB"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.mark.slow
def test_dask_workers_speak_like_the_cli_and_keep_quiet_with_q(model: Path, scene: Path, tmp_path: Path) -> None:
    """Workers' lines carry geoseg's prefix and honour -q; Dask's own notes (a nanny waiting) are not shown."""
    pytest.importorskip("distributed")
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(scene.read_bytes()[:2000])
    quiet = geoseg("run", scene, corrupt, "-o", tmp_path / "q", "-m", model, "--workers", "1", "-q", cwd=tmp_path, timeout=300)
    assert quiet.returncode == 3
    assert [line.split(":")[1].strip() for line in quiet.stderr.splitlines() if line.strip()] == ["failed"], quiet.stderr
    loud = geoseg("run", scene, corrupt, "-o", tmp_path / "l", "-m", model, "--workers", "1", cwd=tmp_path, timeout=300)
    lines = [line for line in loud.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("geoseg: ") for line in lines), loud.stderr


def test_workers_are_capped_by_the_machine(model: Path, scene: Path, tmp_path: Path) -> None:
    line = refused(geoseg("run", scene, "-o", tmp_path / "out", "-m", model, "--workers", 1000, cwd=tmp_path), "--workers 1000")
    assert "CPU cores" in line and not (tmp_path / "out").exists()


def _serve(reply: bytes) -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def loop() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    data = conn.recv(1024)
                    conn.sendall(reply or data)  # an HTTP answer, or an echo
                    time.sleep(0.5)
                except OSError:
                    pass

    threading.Thread(target=loop, daemon=True).start()
    return server, server.getsockname()[1]


@pytest.mark.parametrize("reply", [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", b""], ids=["http", "echo"])
def test_a_scheduler_address_that_is_no_dask_scheduler_is_one_line(
    model: Path, scene: Path, tmp_path: Path, reply: bytes
) -> None:
    server, port = _serve(reply)
    try:
        result = geoseg(
            "run", scene, "-o", tmp_path / "out", "-m", model, "--scheduler", f"tcp://127.0.0.1:{port}", cwd=tmp_path, timeout=90
        )
        refused(result, f"127.0.0.1:{port}", "Dask scheduler")
    finally:
        server.close()
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------- silently wrong results


def test_nodata_value_and_mask_band_both_mark_pixels_invalid(model: Path, tmp_path: Path) -> None:
    data = random_scene((4, 64, 64))
    data[:, :10, :] = 7  # the nodata value, in pixels the mask calls valid
    scene = write_raster(tmp_path / "s.tif", data, nodata=7)
    mask = np.full((64, 64), 255, np.uint8)
    mask[:, :5] = 0  # pixels the mask calls invalid
    with rasterio.open(scene, "r+") as ds:
        ds.write_mask(mask)
    assert geoseg("predict", scene, "-m", model, "-o", tmp_path / "c.tif", cwd=tmp_path).returncode == 0
    with rasterio.open(tmp_path / "c.tif") as ds:
        classes = ds.read(1)
    assert (classes[:10] == 255).all() and (classes[:, :5] == 255).all() and (classes[10:, 5:] < 3).all()


def test_a_self_intersecting_aoi_is_repaired_and_said(model: Path, scene: Path, tmp_path: Path) -> None:
    import geopandas as gpd
    import shapely

    with rasterio.open(scene) as ds:
        b = ds.bounds
    bowtie = shapely.Polygon([(b.left, b.bottom), (b.right, b.top), (b.right, b.bottom), (b.left, b.top)])
    gpd.GeoDataFrame(geometry=[bowtie], crs="EPSG:32633").to_file(tmp_path / "aoi.gpkg")
    out = tmp_path / "out"
    result = geoseg("run", scene, "-o", out, "-m", model, "--aoi", tmp_path / "aoi.gpkg", cwd=tmp_path)
    assert result.returncode == 0 and "make_valid" in result.stderr, result.stderr
    assert any("make_valid" in w for w in json.loads((out / "run.json").read_text())["warnings"])
    with rasterio.open(out / "classes.tif") as ds:
        classes = ds.read(1)
    assert (classes[40, :8] < 3).all() and (classes[40, -8:] < 3).all()  # both lobes predicted
    assert (classes[2, 36:44] == 255).all() and (classes[-3, 36:44] == 255).all()  # between the lobes


def test_areas_are_geodesic_in_geographic_scenes(model: Path, tmp_path: Path) -> None:
    from affine import Affine

    scene = write_raster(tmp_path / "g.tif", random_scene((4, 90, 180)), crs="EPSG:4326", transform=Affine(1, 0, 0, 0, -1, 90))
    out = tmp_path / "out"
    assert geoseg("run", scene, "-o", out, "-m", model, cwd=tmp_path).returncode == 0
    record = json.loads((out / "run.json").read_text())
    total = sum(a["area_m2"] for a in record["areas"])
    assert total == pytest.approx(510.0656e12 / 4, rel=1e-3)  # a quarter of the Earth's ellipsoid


def test_class_names_cannot_run_in_a_spreadsheet(tmp_path: Path, scene: Path) -> None:
    names = ["=cmd|' /C calc'!A0", "+SUM(1,1)", "@SUM(A1)"]
    model = tiny_unet(4, names, mean=[1000.0] * 4, std=[300.0] * 4).save(tmp_path / "evil.pt")
    out = tmp_path / "out"
    assert geoseg("run", scene, "-o", out, "-m", model, cwd=tmp_path).returncode == 0
    import csv

    with (out / "areas.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["class_name"] for row in rows] == ["'" + name for name in names]


def test_complex_rasters_are_refused(model: Path, tmp_path: Path) -> None:
    scene = write_raster(tmp_path / "c.tif", (random_scene((4, 16, 16)) + 1j).astype("complex64"))
    refused(geoseg("predict", scene, "-m", model, "-o", tmp_path / "o.tif", cwd=tmp_path), "c.tif", "complex")


def test_an_all_nodata_scene_in_a_batch_is_done_with_its_warning(model: Path, scene: Path, tmp_path: Path) -> None:
    empty = write_raster(tmp_path / "empty.tif", np.zeros((4, 40, 40), "uint16"), nodata=0)
    out = tmp_path / "out"
    result = geoseg("run", scene, empty, "-o", out, "-m", model, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    batch = json.loads((out / "batch.json").read_text())
    assert batch["counts"] == {"done": 2, "skipped": 0, "outside": 0, "failed": 0}
    assert any("every pixel is nodata" in w for w in json.loads((out / "empty" / "run.json").read_text())["warnings"])


# --------------------------------------------------------------------------------------------- unclear messages


def test_messages_name_the_real_problem(model: Path, scene: Path, tmp_path: Path) -> None:
    refused(geoseg("predict", scene, "-m", model, "-o", scene / "c.tif", cwd=tmp_path), "a.tif", "is a file, not a folder")
    gcps = tmp_path / "gcps.tif"
    from rasterio.control import GroundControlPoint

    with rasterio.open(gcps, "w", driver="GTiff", width=8, height=8, count=4, dtype="uint16") as ds:
        ds.write(random_scene((4, 8, 8)))
        ds.gcps = (
            [GroundControlPoint(0, 0, 13.0, 52.0), GroundControlPoint(8, 8, 13.1, 51.9), GroundControlPoint(0, 8, 13.0, 51.9)],
            rasterio.crs.CRS.from_epsg(4326),
        )
    refused(geoseg("predict", gcps, "-m", model, "-o", tmp_path / "o.tif", cwd=tmp_path), "gcps.tif", "gdalwarp")
    loop = tmp_path / "loop.tif"
    loop.symlink_to(loop)
    refused(geoseg("predict", loop, "-m", model, "-o", tmp_path / "o.tif", cwd=tmp_path), "loop.tif", "link loop")
    named = write_raster(tmp_path / "classes.vrt.tif", random_scene((4, 16, 16)))
    refused(geoseg("run", scene, named, "-o", tmp_path / "batch", "-m", model, cwd=tmp_path), "classes.vrt", "rename")
    assert not (tmp_path / "o.tif").exists() and not (tmp_path / "batch").exists()


def test_a_long_output_name_works(model: Path, scene: Path, tmp_path: Path) -> None:
    out = tmp_path / ("c" * 236 + ".tif")  # 240 characters: geoseg's temporary name must still fit
    result = geoseg("predict", scene, "-m", model, "-o", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.tif", out.name, out.with_suffix(".qml").name])


# ----------------------------------------------------------------------------------------------------- leftovers


def test_a_killed_run_leaves_nothing_after_the_next_run(model: Path, tmp_path: Path) -> None:
    scene = write_raster(tmp_path / "big.tif", random_scene((4, 600, 600)))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = ["run", str(scene), "-o", str(out), "-m", str(model), "--progress", "json", "--batch-size", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "geoseg", *args], cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("{"):
            break
    proc.kill()  # kill -9: no clean-up runs
    proc.communicate(timeout=60)
    assert list(tmp_path.glob(".out.*.partial"))  # the interrupted run's temporary folder
    result = geoseg("run", scene, "-o", out, "-m", model, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.tif", "out"]
    assert not (out / ".geoseg.lock").exists()


def test_a_full_disk_is_named_in_one_line(model: Path, tmp_path: Path) -> None:
    """A real full disk (a 300 kB tmpfs): geoseg's one line names it; GDAL's own libtiff lines may precede it."""
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root and a kernel that allows it")
    try:
        scene = write_raster(tmp_path / "s.tif", random_scene((4, 700, 700)))
        result = geoseg("predict", scene, "-m", model, "-o", small / "c.tif", "--confidence", small / "p.tif", cwd=tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("geoseg: error: no space left on the device writing") and "free disk space" in last
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_review_cases_of_output_folders(model: Path, scene: Path, tmp_path: Path) -> None:
    """A run folder with a user's file is not replaced; a link to a folder is written through; -o . works."""
    out = tmp_path / "out"
    assert geoseg("run", scene, "-o", out, "-m", model, cwd=tmp_path).returncode == 0
    (out / "notes.txt").write_text("mine")
    refused(geoseg("run", scene, "-o", out, "-m", model, "--overwrite", cwd=tmp_path), "out", "did not write")
    assert (out / "notes.txt").read_text() == "mine" and (out / "run.json").exists()
    (out / "notes.txt").unlink()
    link = tmp_path / "link"
    link.symlink_to(out, target_is_directory=True)
    first = (out / "run.json").read_bytes()
    assert geoseg("run", scene, "-o", link, "-m", model, "--overwrite", cwd=tmp_path).returncode == 0
    assert link.is_symlink() and (out / "run.json").read_bytes() != first
    here = tmp_path / "here"
    here.mkdir()
    assert geoseg("run", scene, "-o", ".", "-m", model, cwd=here).returncode == 0
    assert (here / "run.json").exists() and not (here / ".geoseg.lock").exists()


def test_a_killed_batch_resumes(model: Path, tmp_path: Path) -> None:
    scenes = [write_raster(tmp_path / f"s{i}.tif", random_scene((4, 200, 200), seed=i)) for i in range(3)]
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = ["run", *map(str, scenes), "-o", str(out), "-m", str(model), "--progress", "json"]
    proc = subprocess.Popen([sys.executable, "-m", "geoseg", *args], cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("{") and json.loads(line)["stage"] == "batch":
            break  # one scene finished
    proc.kill()
    proc.communicate(timeout=60)
    assert json.loads((out / "batch.json").read_text())["scenes"]  # written when the batch started
    result = geoseg(*args[:-2], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    counts = json.loads((out / "batch.json").read_text())["counts"]
    assert counts["skipped"] >= 1 and counts["skipped"] + counts["done"] == 3 and counts["failed"] == 0


def test_run_creates_missing_parent_folders_and_removes_them_on_failure(model: Path, scene: Path, tmp_path: Path) -> None:
    """`run -o` makes missing parents (as `train` does); a run that fails leaves none of them behind."""
    out = tmp_path / "projects" / "2026" / "out"
    assert geoseg("run", scene, "-o", out, "-m", model, cwd=tmp_path).returncode == 0
    assert (out / "run.json").exists()
    other = write_raster(tmp_path / "b.tif", random_scene((4, 40, 40), seed=1))
    assert geoseg("run", scene, other, "-o", tmp_path / "deep" / "batch", "-m", model, cwd=tmp_path).returncode == 0
    assert (tmp_path / "deep" / "batch" / "batch.json").exists()
    empty = write_raster(tmp_path / "bad.tif", random_scene((3, 40, 40)))  # 3 bands for a 4-band model: refused
    refused(geoseg("run", empty, "-o", tmp_path / "x" / "y" / "out", "-m", model, cwd=tmp_path), "bad.tif")
    assert not (tmp_path / "x").exists()


def test_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    """`geoseg info default | head -1`: the reader leaves early; geoseg stops quietly (no "unexpected" line)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-m", "geoseg", "info", "default"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    err = child.stderr.read().decode()
    child.stderr.close()
    assert child.wait(timeout=120) in (0, 1) and err == "", err
