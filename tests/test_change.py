"""``geoseg change``: generated pairs of class maps with known transitions, checked against hand-computed answers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import geoseg
from geoseg.core.classes import CLASSES_TAG, ClassInfo, class_table_json
from geoseg.core.errors import GeosegError
from geoseg.core.transitions import TRANSITIONS_TAG
from tests.helpers import UTM33, WGS84, write_raster
from tests.test_qgis import needs_qgis, open_in_qgis

TABLE = [ClassInfo(0, "water", "#1f78b4"), ClassInfo(1, "forest", "#33a02c"), ClassInfo(2, "crop", "#ffff99")]
ORIGIN = Affine(10.0, 0, 400000.0, 0, -10.0, 5800000.0)


def class_map(path: Path, data: np.ndarray, table=TABLE, transform=ORIGIN, crs=UTM33, nodata=255) -> Path:
    write_raster(path, data, crs=crs, transform=transform, nodata=nodata)
    if table is not None:
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(**{CLASSES_TAG: class_table_json(table)})
    return path


def pair_maps() -> tuple[np.ndarray, np.ndarray]:
    """BEFORE: water | forest over a crop strip; AFTER: a crop field cut into the forest, a forest patch in the water."""
    before = np.zeros((60, 80), np.uint8)
    before[:, 40:] = 1
    before[50:, :] = 2
    after = before.copy()
    after[:20, 40:60] = 2  # forest -> crop: 400 px
    after[30:32, 0:10] = 1  # water -> forest: 20 px
    return before, after


# the hand-computed answer of pair_maps (10 m pixels: 100 m² each)
EXPECTED_PAIRS = {
    ("water", "water"): 40 * 50 - 20,
    ("water", "forest"): 20,
    ("forest", "forest"): 40 * 50 - 400,
    ("forest", "crop"): 400,
    ("crop", "crop"): 80 * 10,
}


def matrix(out: Path) -> dict[tuple[str, str], tuple[int, float]]:
    with (out / "matrix.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["from_class", "to_class", "pixels", "area_m2"]
    return {(r["from_class"], r["to_class"]): (int(r["pixels"]), float(r["area_m2"])) for r in rows}


def change_layer(out: Path, name: str = "changes.gpkg"):
    import geopandas as gpd

    return gpd.read_file(out / name, **({"layer": "polygons"} if name.endswith(".gpkg") else {}))


def test_known_transitions_on_one_grid(tmp_path: Path) -> None:
    before, after = pair_maps()
    out = tmp_path / "change"
    result = geoseg.change(class_map(tmp_path / "b.tif", before), class_map(tmp_path / "a.tif", after), out)
    m = matrix(out)
    pairs = {k: v for k, v in m.items() if "total" not in k}
    assert pairs == {k: (n, n * 100.0) for k, n in EXPECTED_PAIRS.items()}
    # totals: each date's class areas
    for c in TABLE:
        assert m[(c.name, "total")][0] == int((before == c.id).sum())
        assert m[("total", c.name)][0] == int((after == c.id).sum())
    assert m[("total", "total")] == (4800, 480000.0)
    # transitions.tif: one value per pair, in (from, to) order, with its table in a tag and colours
    with rasterio.open(out / "transitions.tif") as ds:
        values = ds.read(1)
        rows = json.loads(ds.tags()[TRANSITIONS_TAG])
        cmap = ds.colormap(1)
        assert ds.transform == ORIGIN and ds.crs.to_string() == UTM33
    names = {r["value"]: (r["from_class"], r["to_class"]) for r in rows}
    assert sorted(names.values(), key=lambda p: [c.name for c in TABLE].index(p[0])) == list(EXPECTED_PAIRS)
    decoded = np.vectorize(lambda v: names[v][0])(values), np.vectorize(lambda v: names[v][1])(values)
    assert (decoded[0] == np.array([c.name for c in TABLE])[before]).all()
    assert (decoded[1] == np.array([c.name for c in TABLE])[after]).all()
    unchanged = [v for v, (a, b) in names.items() if a == b]
    assert all(cmap[v][:3] == (0xD9, 0xD9, 0xD9) for v in unchanged)
    crop = next(v for v, p in names.items() if p == ("forest", "crop"))
    assert cmap[crop][:3] == (0xFF, 0xFF, 0x99)  # a change takes the colour of the class it became
    assert "forest → crop" in (out / "transitions.qml").read_text(encoding="utf-8")
    # polygons of the changes, with from/to classes and areas
    layer = change_layer(out).sort_values("area_m2")
    assert list(layer.from_class) == ["water", "forest"] and list(layer.to_class) == ["forest", "crop"]
    assert list(layer.area_m2) == [2000.0, 40000.0]
    wgs = change_layer(out, "changes.geojson")
    assert wgs.crs.to_epsg() == 4326 and len(wgs) == 2
    # summary: gain, loss and net per class
    balance = {row["class"]: row for row in result.summary["classes"]}
    assert balance["forest"]["loss_pixels"] == 400 and balance["forest"]["gain_pixels"] == 20
    assert balance["crop"]["net_m2"] == 40000.0 and balance["water"]["net_pixels"] == -20
    assert result.summary["pixels"] == {"compared": 4800, "changed": 420}
    assert json.loads((out / "summary.json").read_text())["alignment"]["same_grid"] is True
    assert (out / "preview.png").read_bytes()[:4] == b"\x89PNG"


def test_min_area_drops_small_changes(tmp_path: Path) -> None:
    before, after = pair_maps()
    out = geoseg.change(
        class_map(tmp_path / "b.tif", before), class_map(tmp_path / "a.tif", after), tmp_path / "c", min_area=5000
    ).outdir
    layer = change_layer(out)
    assert list(layer.to_class) == ["crop"]  # the 2000 m² forest patch is merged into its surroundings
    assert matrix(out)[("water", "forest")][0] == 20  # the matrix counts every pixel


def test_nodata_on_either_date_is_left_out(tmp_path: Path) -> None:
    before, after = pair_maps()
    before[:5, :5] = 255
    after[-5:, -5:] = 255
    out = geoseg.change(class_map(tmp_path / "b.tif", before), class_map(tmp_path / "a.tif", after), tmp_path / "c").outdir
    with rasterio.open(out / "transitions.tif") as ds:
        values = ds.read(1)
    assert (values[:5, :5] == 255).all() and (values[-5:, -5:] == 255).all()
    assert int((values == 255).sum()) == 50
    assert matrix(out)[("total", "total")][0] == 4800 - 50


def test_identical_maps_give_no_changes(tmp_path: Path) -> None:
    before, _ = pair_maps()
    path = class_map(tmp_path / "b.tif", before)
    result = geoseg.change(path, path, tmp_path / "same")
    assert result.summary["pixels"]["changed"] == 0 and result.summary["polygons"] == 0
    assert len(change_layer(result.outdir)) == 0
    assert all(a == b for a, b in (k for k in matrix(result.outdir) if "total" not in k))


def test_shifted_grid_compares_only_the_overlap(tmp_path: Path) -> None:
    before, after = pair_maps()
    # AFTER starts 30 columns east and 10 rows south of BEFORE, on the same grid
    shifted = ORIGIN * Affine.translation(30, 10)
    wide = np.full((60, 80), 2, np.uint8)
    wide[:50, :50] = after[10:60, 30:80]
    result = geoseg.change(
        class_map(tmp_path / "b.tif", before), class_map(tmp_path / "a.tif", wide, transform=shifted), tmp_path / "c"
    )
    window = result.summary["alignment"]["window"]
    assert window == {"col_off": 30, "row_off": 10, "width": 50, "height": 50}
    assert result.summary["alignment"]["same_grid"] is True
    with rasterio.open(result.outdir / "transitions.tif") as ds:
        assert ds.transform == shifted and ds.shape == (50, 50)
    # hand count over the overlap rows 10..60, columns 30..80
    b, a = before[10:, 30:], after[10:, 30:]
    m = matrix(result.outdir)
    assert m[("forest", "crop")][0] == int(((b == 1) & (a == 2)).sum()) == 200
    assert m[("total", "total")][0] == 2500


def test_finer_pixels_and_another_crs_are_resampled_exactly(tmp_path: Path) -> None:
    before, after = pair_maps()
    b = class_map(tmp_path / "b.tif", before)
    expected = matrix(geoseg.change(b, class_map(tmp_path / "a.tif", after), tmp_path / "ref").outdir)
    # AFTER at 5 m: every pixel split into 2x2, so nearest resampling gives the 10 m map back
    fine = np.repeat(np.repeat(after, 2, axis=0), 2, axis=1)
    fine_t = Affine(5.0, 0, ORIGIN.c, 0, -5.0, ORIGIN.f)
    result = geoseg.change(b, class_map(tmp_path / "fine.tif", fine, transform=fine_t), tmp_path / "fine")
    assert result.summary["alignment"]["same_grid"] is False and result.summary["alignment"]["resampling"] == "nearest"
    assert matrix(result.outdir) == expected
    # AFTER in ETRS89 / UTM 33N: another CRS whose coordinates agree with WGS 84 / UTM 33N to well under a pixel
    result = geoseg.change(b, class_map(tmp_path / "etrs.tif", after, crs="EPSG:25833"), tmp_path / "etrs")
    assert result.summary["alignment"]["after_crs"] == "EPSG:25833"
    assert matrix(result.outdir) == expected


def test_geographic_maps_get_geodesic_areas(tmp_path: Path) -> None:
    from pyproj import Geod

    before, after = pair_maps()
    t = Affine(0.001, 0, 13.0, 0, -0.001, 60.0)
    out = geoseg.change(
        class_map(tmp_path / "b.tif", before, transform=t, crs=WGS84),
        class_map(tmp_path / "a.tif", after, transform=t, crs=WGS84),
        tmp_path / "c",
    ).outdir
    total = abs(Geod(ellps="WGS84").polygon_area_perimeter([13.0, 13.08, 13.08, 13.0], [60.0, 60.0, 59.94, 59.94])[0])
    assert matrix(out)[("total", "total")][1] == pytest.approx(total, rel=1e-6)
    # the forest -> crop block, rows 0..20 of 60, columns 40..60: its own geodesic area
    block = abs(Geod(ellps="WGS84").polygon_area_perimeter([13.04, 13.06, 13.06, 13.04], [60.0, 60.0, 59.98, 59.98])[0])
    assert matrix(out)[("forest", "crop")][1] == pytest.approx(block, rel=1e-6)
    assert change_layer(out).set_index("to_class").area_m2["crop"] == pytest.approx(block, rel=1e-4)


def test_class_tables_are_matched_by_name(tmp_path: Path) -> None:
    before, after = pair_maps()
    b = class_map(tmp_path / "b.tif", before)
    expected = matrix(geoseg.change(b, class_map(tmp_path / "a.tif", after), tmp_path / "ref").outdir)
    # the same map from another model: ids in another order, names in other case
    order = [2, 0, 1]  # water -> 2, forest -> 0, crop -> 1
    renamed = [ClassInfo(order[c.id], c.name.upper(), c.color) for c in TABLE]
    recoded = np.array(order, np.uint8)[after]
    result = geoseg.change(b, class_map(tmp_path / "r.tif", recoded, table=renamed), tmp_path / "named")
    assert matrix(result.outdir) == expected
    # names that do not match are refused, with both tables named
    other = [ClassInfo(0, "water", "#0000ff"), ClassInfo(1, "woodland", "#00ff00"), ClassInfo(2, "crop", "#ffff00")]
    with pytest.raises(GeosegError, match="woodland only in"):
        geoseg.change(b, class_map(tmp_path / "o.tif", after, table=other), tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    # one table for both with --classes
    table = tmp_path / "legend.json"
    table.write_text(json.dumps({"0": "water", "1": "forest", "2": "crop"}), encoding="utf-8")
    result = geoseg.change(b, tmp_path / "o.tif", tmp_path / "legend", classes_table=table)
    assert matrix(result.outdir) == expected


def test_plain_and_float_maps(tmp_path: Path) -> None:
    before, after = pair_maps()
    # integer maps without a class table or nodata: values are the class names
    plain = geoseg.change(
        class_map(tmp_path / "b.tif", before.astype(np.int16), table=None, nodata=None),
        class_map(tmp_path / "a.tif", after.astype(np.int16), table=None, nodata=None),
        tmp_path / "plain",
    )
    assert matrix(plain.outdir)[("1", "2")][0] == 400
    # float maps are refused without --classes, and read with it
    fb = class_map(tmp_path / "fb.tif", before.astype(np.float32), table=None, nodata=None)
    fa = class_map(tmp_path / "fa.tif", after.astype(np.float32), table=None, nodata=None)
    with pytest.raises(GeosegError, match="float32 values, not class ids"):
        geoseg.change(fb, fa, tmp_path / "float")
    legend = tmp_path / "legend.json"
    legend.write_text(json.dumps({"0": "water", "1": "forest", "2": "crop"}), encoding="utf-8")
    result = geoseg.change(fb, fa, tmp_path / "float", classes_table=legend)
    assert matrix(result.outdir)[("forest", "crop")][0] == 400


def test_strips_give_the_same_result_as_one_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import geoseg.io.align as align

    rng = np.random.default_rng(0)
    before = rng.integers(0, 3, (300, 200), dtype=np.uint8)
    after = np.where(rng.random((300, 200)) < 0.1, rng.integers(0, 3, (300, 200)), before).astype(np.uint8)
    b, a = class_map(tmp_path / "b.tif", before), class_map(tmp_path / "a.tif", after)
    whole = geoseg.change(b, a, tmp_path / "whole")
    monkeypatch.setattr(align, "STRIP_PIXELS", 200 * 7)  # strips of 7 rows
    stripped = geoseg.change(b, a, tmp_path / "strips")
    assert matrix(whole.outdir) == matrix(stripped.outdir)
    with rasterio.open(whole.outdir / "transitions.tif") as x, rasterio.open(stripped.outdir / "transitions.tif") as y:
        assert (x.read(1) == y.read(1)).all()
    assert len(change_layer(whole.outdir)) == len(change_layer(stripped.outdir))


def test_scenes_are_predicted_first_with_a_model(tmp_path: Path) -> None:
    from tests.helpers import BandLogits, random_scene, wrap

    model = wrap(BandLogits(), 4, 4, 32, "8px")
    first = random_scene((4, 50, 70), seed=1)
    second = first.copy()
    second[:, :, :30] = random_scene((4, 50, 30), seed=2)
    b = write_raster(tmp_path / "s1.tif", first)
    a = write_raster(tmp_path / "s2.tif", second)
    result = geoseg.change(b, a, tmp_path / "c", model=model)
    out = result.outdir
    with rasterio.open(out / "before_classes.tif") as x, rasterio.open(out / "after_classes.tif") as y:
        before, after = x.read(1), y.read(1)
    assert (before[:, 30:] == after[:, 30:]).all() and (before != after).any()
    assert result.summary["pixels"]["changed"] == int((before != after).sum())


def test_masked_cloud_shares_of_each_date_are_in_the_summary(tmp_path: Path) -> None:
    """``change -m MODEL --mask-clouds`` records, per date, what the cloud mask made nodata (as run does in run.json)."""
    from tests.helpers import BandLogits, wrap
    from tests.test_clouds import S2, cloudy_scene, needs_model, write_dn

    needs_model()
    from geoseg.inference.clouds import write_cloud_mask

    model = wrap(BandLogits(0.01), S2, 6, 64, "16px", mean=[1000.0] * 6, std=[500.0] * 6)
    cloudy = write_dn(tmp_path / "cloudy.tif", cloudy_scene(seed=0, size=192)[0])
    clear = write_dn(tmp_path / "clear.tif", cloudy_scene(seed=1, size=192)[0])
    summary = geoseg.change(cloudy, clear, tmp_path / "c", model=model, mask_clouds=True, device="cpu").summary
    for label, scene in (("before", cloudy), ("after", clear)):
        direct = write_cloud_mask(scene, tmp_path / f"{label}_clouds.tif", device="cpu")
        record = summary["clouds"][label]
        assert record["shares"] == direct.shares and record["valid_pixels"] == direct.valid_pixels, record
        assert record["path"] is None  # the mask itself is not kept in OUTDIR
    assert summary["clouds"]["before"]["shares"]["cloud"] > 1
    on_disk = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert on_disk["clouds"]["after"]["shares"] == summary["clouds"]["after"]["shares"]
    maps = [tmp_path / "c" / f"{label}_classes.tif" for label in ("before", "after")]
    assert geoseg.change(*maps, tmp_path / "p").summary["clouds"] is None  # nothing masked


def test_outdir_is_refused_without_overwrite(tmp_path: Path) -> None:
    before, after = pair_maps()
    b, a = class_map(tmp_path / "b.tif", before), class_map(tmp_path / "a.tif", after)
    out = geoseg.change(b, a, tmp_path / "c").outdir
    stamp = (out / "summary.json").read_bytes()
    with pytest.raises(GeosegError, match="--overwrite"):
        geoseg.change(b, a, out)
    assert (out / "summary.json").read_bytes() == stamp
    geoseg.change(b, a, out, overwrite=True, min_area=1000)
    assert json.loads((out / "summary.json").read_text())["parameters"]["min_area"] == 1000


def test_bad_input_is_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    from tests.test_trust import geoseg as cli
    from tests.test_trust import refused

    before, after = pair_maps()
    b = class_map(tmp_path / "b.tif", before)
    far = class_map(tmp_path / "far.tif", after, transform=ORIGIN * Affine.translation(10_000, 0))
    floats = class_map(tmp_path / "f.tif", after.astype(np.float32), table=None, nodata=None)
    other = class_map(tmp_path / "o.tif", after, table=[ClassInfo(0, "water", "#0000ff"), ClassInfo(1, "woods", "#00ff00")])
    out = tmp_path / "out"
    refused(cli("change", b, far, "-o", out, cwd=tmp_path), "do not overlap", "far.tif")
    refused(cli("change", b, floats, "-o", out, cwd=tmp_path), "f.tif", "--classes")
    refused(cli("change", b, other, "-o", out, cwd=tmp_path), "woods", "--classes")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["b.tif", "f.tif", "far.tif", "o.tif"]
    done = cli("change", b, b, "-o", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    refused(cli("change", b, b, "-o", out, cwd=tmp_path), "already exists", "--overwrite")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep", encoding="utf-8")
    refused(cli("change", b, b, "-o", mine, "--overwrite", cwd=tmp_path), "notes.txt")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_cli_progress_and_help(tmp_path: Path) -> None:
    from tests.test_trust import geoseg as cli

    before, after = pair_maps()
    b, a = class_map(tmp_path / "b.tif", before), class_map(tmp_path / "a.tif", after)
    done = cli("change", b, a, "-o", tmp_path / "c", "--progress", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    stages = {json.loads(line)["stage"] for line in done.stderr.splitlines() if line.startswith("{")}
    assert {"compare", "transitions", "vectorize"} <= stages
    text = cli("change", "--help", cwd=tmp_path).stdout
    for word in ("transitions.tif", "matrix.csv", "--min-area", "--classes", "-m, --model", "nearest"):
        assert word in text, word


@needs_qgis
def test_qgis_opens_change_outputs_styled(tmp_path: Path) -> None:
    before, after = pair_maps()
    out = geoseg.change(class_map(tmp_path / "b.tif", before), class_map(tmp_path / "a.tif", after), tmp_path / "c").outdir
    report = open_in_qgis(tmp_path, out / "transitions.tif", out / "changes.gpkg", out / "changes.geojson")
    assert report[str(out / "transitions.tif")]["renderer"] == "paletted"
    gpkg = report[str(out / "changes.gpkg")]
    assert gpkg["valid"] and gpkg["count"] == 2 and gpkg["renderer"] == "categorizedSymbol"
    assert sorted(c[1] for c in gpkg["categories"]) == ["forest → crop", "water → forest"]
    assert report[str(out / "changes.geojson")]["crs"] == "EPSG:4326"


def test_south_up_maps_are_compared(tmp_path: Path) -> None:
    before, after = pair_maps()
    b = class_map(tmp_path / "b.tif", before)
    expected = matrix(geoseg.change(b, class_map(tmp_path / "a.tif", after), tmp_path / "ref").outdir)
    # the same maps stored south-up (rows from south to north, positive pixel height), as netCDF exports are
    south_up = Affine(10.0, 0, ORIGIN.c, 0, 10.0, ORIGIN.f - 600)
    sb = class_map(tmp_path / "sb.tif", before[::-1].copy(), transform=south_up)
    sa = class_map(tmp_path / "sa.tif", after[::-1].copy(), transform=south_up)
    assert matrix(geoseg.change(b, sa, tmp_path / "after_south").outdir) == expected
    result = geoseg.change(sb, a := tmp_path / "a.tif", tmp_path / "before_south")
    assert result.summary["alignment"]["same_grid"] is False and matrix(result.outdir) == expected
    assert matrix(geoseg.change(sb, sa, tmp_path / "both").outdir) == expected and a.exists()


def test_legends_with_large_codes_and_many_pairs(tmp_path: Path) -> None:
    # CORINE-like three-digit codes named by --classes, and more than 255 from→to pairs: a uint16 transitions map
    rng = np.random.default_rng(3)
    codes = np.array([111 + 3 * i for i in range(20)], dtype=np.uint16)
    before = codes[rng.integers(0, 20, (120, 150))]
    after = np.where(rng.random(before.shape) < 0.5, codes[rng.integers(0, 20, before.shape)], before).astype(np.uint16)
    legend = tmp_path / "legend.json"
    legend.write_text(json.dumps({str(c): f"class {c}" for c in codes}), encoding="utf-8")
    b = class_map(tmp_path / "b.tif", before, table=None, nodata=0)
    a = class_map(tmp_path / "a.tif", after, table=None, nodata=0)
    result = geoseg.change(b, a, tmp_path / "c", classes_table=legend)
    pairs = {(int(x), int(y)) for x, y in zip(before.ravel(), after.ravel())}
    assert result.summary["transitions"] == len(pairs) > 255
    m = matrix(result.outdir)
    assert m[("class 111", "class 114")][0] == int(((before == 111) & (after == 114)).sum())
    with rasterio.open(result.outdir / "transitions.tif") as ds:
        assert ds.dtypes[0] == "uint16" and ds.nodata == 65535
        rows = json.loads(ds.tags()[TRANSITIONS_TAG])
        values = ds.read(1)
    decode = {r["value"]: (r["from_id"], r["to_id"]) for r in rows}
    assert decode[int(values[7, 9])] == (int(before[7, 9]), int(after[7, 9]))


def test_web_mercator_areas_are_true_areas(tmp_path: Path) -> None:
    from pyproj import Geod, Transformer

    before, after = pair_maps()
    t = Affine(10.0, 0, 1_502_800.0, 0, -10.0, 6_853_000.0)  # about 13.5°E 52.3°N
    out = geoseg.change(
        class_map(tmp_path / "b.tif", before, transform=t, crs="EPSG:3857"),
        class_map(tmp_path / "a.tif", after, transform=t, crs="EPSG:3857"),
        tmp_path / "c",
    ).outdir
    to_degrees = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    (lon0, lon1), (lat0, lat1) = to_degrees.transform([t.c, t.c + 800], [t.f, t.f - 600])
    truth = abs(Geod(ellps="WGS84").polygon_area_perimeter([lon0, lon1, lon1, lon0], [lat0, lat0, lat1, lat1])[0])
    total = matrix(out)[("total", "total")][1]
    assert total == pytest.approx(truth, rel=1e-4) and total < 480000.0 / 2.5  # planar "m²" would be 2.67x too large
    layer = change_layer(out).set_index("to_class")
    assert layer.area_m2["crop"] == pytest.approx(matrix(out)[("forest", "crop")][1], rel=1e-3)


def test_one_map_without_a_class_table_takes_the_others_names(tmp_path: Path) -> None:
    before, after = pair_maps()
    plain_b = class_map(tmp_path / "pb.tif", before, table=None)
    named_a = class_map(tmp_path / "na.tif", after)
    for b, a in ((plain_b, named_a), (class_map(tmp_path / "nb.tif", before), class_map(tmp_path / "pa.tif", after, table=None))):
        result = geoseg.change(b, a, tmp_path / f"c_{b.stem}")
        assert matrix(result.outdir)[("forest", "crop")][0] == 400
        assert any("has no class table" in w for w in result.summary["warnings"])
    # ids matched by name, and a value AFTER's own table does not name is refused
    order = [2, 0, 1]
    renamed = [ClassInfo(order[c.id], c.name, c.color) for c in TABLE]
    recoded = np.array(order, np.uint8)[after]
    recoded[0, 0] = 7
    with pytest.raises(GeosegError, match="value 7, which its class table does not name"):
        geoseg.change(
            class_map(tmp_path / "b.tif", before), class_map(tmp_path / "r.tif", recoded, table=renamed), tmp_path / "x"
        )


def test_review_refusals(tmp_path: Path) -> None:
    from tests.test_trust import geoseg as cli
    from tests.test_trust import refused

    before, after = pair_maps()
    b, a = class_map(tmp_path / "b.tif", before), class_map(tmp_path / "a.tif", after)
    scene = write_raster(tmp_path / "scene.tif", np.ones((3, 60, 80), np.uint16))
    far = write_raster(tmp_path / "far.tif", np.ones((3, 60, 80), np.uint16), transform=ORIGIN * Affine.translation(9000, 0))
    # prediction options without a model would be ignored
    given = cli("change", b, a, "-o", tmp_path / "o", "--aoi", "x.gpkg", "--tta", cwd=tmp_path)
    refused(given, "--tta", "--aoi", "-m MODEL", code=2)  # a usage error
    # a scene is not a class map
    refused(cli("change", b, scene, "-o", tmp_path / "o", cwd=tmp_path), "scene.tif", "3 bands", "-m MODEL")
    # scenes that do not overlap are refused before any prediction, naming the scenes
    refused(cli("change", scene, far, "-o", tmp_path / "o", "-m", "default", cwd=tmp_path), "scene.tif", "far.tif", "overlap")
    # a folder of another geoseg command
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text('{"geoseg_version": "0.2.0"}', encoding="utf-8")
    refused(cli("change", b, a, "-o", run_dir, "--overwrite", cwd=tmp_path), "another geoseg command", "run.json")
    assert not (tmp_path / "o").exists()
    # --classes takes the bundled model by name
    assert cli("change", b, a, "-o", tmp_path / "d", "--classes", "default", cwd=tmp_path).returncode == 0


def test_preview_title_tells_the_two_inputs_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two dates' classes.tif are named by their shortest distinguishing path tails; summary.json keeps the paths."""
    import geoseg.flows.change as flow
    from geoseg.report.change import distinct_names

    titles: list[str] = []
    preview = flow.write_change_preview
    monkeypatch.setattr(flow, "write_change_preview", lambda *a, title="": titles.append(title) or preview(*a, title=title))
    before, after = pair_maps()
    (tmp_path / "2019").mkdir()
    (tmp_path / "2024").mkdir()
    b, a = class_map(tmp_path / "2019" / "classes.tif", before), class_map(tmp_path / "2024" / "classes.tif", after)
    result = geoseg.change(b, a, tmp_path / "c")
    assert titles == ["2019/classes.tif → 2024/classes.tif"]
    assert result.summary["inputs"]["before"] == str(b) and result.summary["inputs"]["after"] == str(a)
    assert (result.outdir / "preview.png").read_bytes()[:4] == b"\x89PNG"
    assert distinct_names("/d/2019.tif", "/d/2024.tif") == ("2019.tif", "2024.tif")  # file names when they differ
    assert distinct_names("x/a/c.tif", "y/a/c.tif") == ("x/a/c.tif", "y/a/c.tif")
    assert distinct_names("c.tif", "/data/2024/c.tif") == ("c.tif", "2024/c.tif")
    assert distinct_names("same.tif", "same.tif") == ("same.tif", "same.tif")
