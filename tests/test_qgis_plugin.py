"""The QGIS plugin (qgis_plugin/geoseg_qgis): its zip, the runner that drives geoseg, and the plugin in a real QGIS.

The zip and the runner are tested in this process (the runner imports no
QGIS); the rest installs the zip into a fresh QGIS profile and drives the
plugin headless through Debian's python3 (tests/clients/qgis_plugin.py), and
skips, saying why, when QGIS is not installed.
"""

from __future__ import annotations

import configparser
import doctest
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import ROOT, SAMPLE
from tests.test_qgis import SYSTEM_PYTHON, needs_qgis, qgis_env

PLUGIN = ROOT / "qgis_plugin" / "geoseg_qgis"
BUILD = ROOT / "scripts" / "build_qgis_plugin.py"
CLIENT = Path(__file__).parent / "clients" / "qgis_plugin.py"
GEOSEG = Path(sys.executable).with_name("geoseg")  # the venv's geoseg command
TRUTH = ROOT / "data_samples" / "brandenburg_osm_polygons_512.gpkg"
ALGORITHMS = {f"geoseg:{name}" for name in ("run", "predict", "vectorize", "evaluate", "tile", "train", "export", "change")}
posix_only = pytest.mark.skipif(os.name != "posix", reason="process groups and /proc are POSIX")


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = load(PLUGIN / "runner.py", "geoseg_qgis_runner")


def project_version() -> str:
    return str(load(BUILD, "build_qgis_plugin").project_version())


def build(out: Path) -> Path:
    done = subprocess.run([sys.executable, str(BUILD), "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return out


# the zip -------------------------------------------------------------------------------------------------------


def test_zip_holds_one_plugin_folder_with_metadata_icon_and_licence(tmp_path: Path) -> None:
    path = build(tmp_path / "dist" / "geoseg-qgis.zip")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        metadata = zf.read("geoseg_qgis/metadata.txt").decode()
        icon = zf.read("geoseg_qgis/icon.png")
        licence = zf.read("geoseg_qgis/LICENSE").decode()
    assert {name.split("/")[0] for name in names} == {"geoseg_qgis"}
    assert {"geoseg_qgis/__init__.py", "geoseg_qgis/provider.py", "geoseg_qgis/runner.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    parser = configparser.ConfigParser()
    parser.read_string(metadata)
    general = parser["general"]
    assert general["version"] == project_version()
    assert general["author"] == "geoseg developers"
    assert general["hasProcessingProvider"] == "yes"
    assert general["qgisMinimumVersion"] >= "3.22"
    assert general["name"] and general["description"] and general["about"]
    assert f"geoseg_qgis/{general['icon']}" in names and icon[:8] == b"\x89PNG\r\n\x1a\n"
    assert licence.startswith("MIT License")
    assert build(tmp_path / "again.zip").read_bytes() == path.read_bytes()  # reproducible


# the runner, in this process with fake geoseg commands ---------------------------------------------------------


class Feedback:
    """What QgsProcessingFeedback offers the runner, recorded; cancels once ``cancel_when`` says so."""

    def __init__(self, cancel_when=None):
        self.progress: list[float] = []
        self.texts: list[str] = []
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.commands: list[str] = []
        self.cancel_when = cancel_when

    def setProgress(self, value: float) -> None:  # noqa: N802 - QGIS API
        self.progress.append(value)

    def setProgressText(self, text: str) -> None:  # noqa: N802 - QGIS API
        self.texts.append(text)

    def pushInfo(self, text: str) -> None:  # noqa: N802 - QGIS API
        self.infos.append(text)

    def pushWarning(self, text: str) -> None:  # noqa: N802 - QGIS API
        self.warnings.append(text)

    def pushCommandInfo(self, text: str) -> None:  # noqa: N802 - QGIS API
        self.commands.append(text)

    def isCanceled(self) -> bool:  # noqa: N802 - QGIS API
        return bool(self.cancel_when and self.cancel_when(self))


FAKE = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time

    def progress(stage, done, total):
        sys.stderr.write(json.dumps({"stage": stage, "done": done, "total": total}) + "\\n")
        sys.stderr.flush()

    mode = sys.argv[1]
    if mode == "--version":
        print("geoseg, version " + os.environ.get("FAKE_VERSION", "9.9.9"))
    elif mode == "ok":
        print("a table on stdout")
        for done in range(4):
            progress("predict", done, 3 if done < 3 else 3)
        sys.stderr.write("geoseg: warning: pixel size 20 m differs from the model's 10 m\\n")
        progress("vectorize", 1, 1)
        sys.stderr.write("geoseg: wrote out/\\n")
    elif mode == "export":  # what geoseg export --quantize int8 --calibration SCENE tells
        for stage in ("load", "calibrate", "export", "quantize", "write"):
            progress(stage, 0, 1)
            progress(stage, 1, 1)
        sys.stderr.write("geoseg: wrote m.onnx (4.7 MB)\\n")
    elif mode == "fail":
        sys.stderr.write("geoseg: warning: something odd\\n")
        sys.stderr.write("geoseg: error: scene.tif does not exist: check the path\\n")
        sys.exit(1)
    elif mode == "badvalue":  # geoseg's own usage error: its one line, exit 2
        sys.stderr.write("geoseg: error: overlap 1.5 must be a fraction in [0, 1) of the chip, or pixels written like '64px'\\n")
        sys.exit(2)
    elif mode == "killed":  # what the out-of-memory killer does, after a warning
        sys.stderr.write("reading scene.tif\\n")
        sys.stderr.write("geoseg: warning: pixel size 20 m differs from the model's 10 m\\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "usage":
        sys.stderr.write("Usage: geoseg evaluate [OPTIONS] PRED.tif TRUTH\\nTry 'geoseg evaluate -h' for help.\\n\\n")
        sys.stderr.write("Error: No such option: --report\\n")
        sys.exit(2)
    elif mode == "hang":
        stubborn = "--stubborn" in sys.argv
        ignore = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " if stubborn else ""
        child = subprocess.Popen([sys.executable, "-c", ignore + "import time; time.sleep(600)"])
        if stubborn:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("pids", os.getpid(), child.pid, flush=True)
        while True:
            progress("predict", 0, 9)
            time.sleep(0.05)
    """
)


@pytest.fixture
def fake(tmp_path: Path) -> list[str]:
    script = tmp_path / "fake_geoseg.py"
    script.write_text(FAKE)
    return [sys.executable, str(script)]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_runner_doctests() -> None:
    assert doctest.testmod(runner).failed == 0


def test_runner_finds_geoseg_in_parameter_then_setting_then_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    command = venv / "bin" / "geoseg"
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    python = tmp_path / "python3.12"
    python.write_text("")
    assert runner.find_geoseg(str(command), "/elsewhere/geoseg") == [str(command)]
    assert runner.find_geoseg("", str(python)) == [str(python), "-m", "geoseg"]
    assert runner.find_geoseg(f' "{venv}" ', "") == [str(command)]  # a venv folder, pasted with quotes
    monkeypatch.setenv("PATH", str(venv / "bin"))
    assert runner.find_geoseg("", "") == [str(command)]
    with pytest.raises(runner.GeosegError, match="given in the 'geoseg executable' parameter does not exist: set the full"):
        runner.find_geoseg(str(tmp_path / "nope"), str(command))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(runner.GeosegError, match=r"not found on PATH: install it .* Settings > Options > Processing"):
        runner.find_geoseg("", "")
    wrapper = tmp_path / "geoseg.BAT"  # Windows' cmd.exe would read "x.gpkg|layername=y" as a pipe
    wrapper.write_text("@python -m geoseg %*\r\n")
    with pytest.raises(runner.GeosegError, match="is a batch file, which cannot pass layer names safely: give geoseg.exe"):
        runner.find_geoseg(str(wrapper), "")


def test_runner_checks_the_version(fake: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert runner.check_version([str(GEOSEG)]) == project_version()
    monkeypatch.setenv("FAKE_VERSION", "0.1.9")
    with pytest.raises(runner.GeosegError, match=r"is geoseg 0\.1\.9, older than this plugin needs \(0\.2\.0\): upgrade"):
        runner.check_version(fake)
    with pytest.raises(runner.GeosegError, match=r"is not a working geoseg \(.*No module named geoseg_not_here\): set"):
        runner.check_version([sys.executable, "-I", "-m", "geoseg_not_here"])
    monkeypatch.setenv("FAKE_VERSION", "0.2.0")
    assert runner.check_version(fake) == "0.2.0"


def test_runner_turns_progress_lines_into_feedback(fake: list[str]) -> None:
    feedback = Feedback()
    stdout = runner.run_geoseg(fake, ["ok"], feedback, runner.Progress({"predict": (0, 80), "vectorize": (80, 20)}))
    assert stdout == ["a table on stdout"]
    assert feedback.progress == pytest.approx([0, 80 / 3, 160 / 3, 80, 100])
    assert feedback.texts[0] == "geoseg: predict 0/3"
    assert feedback.warnings == ["geoseg: warning: pixel size 20 m differs from the model's 10 m"]
    assert sorted(feedback.infos) == ["a table on stdout", "geoseg: wrote out/"]  # stdout and stderr: no order between them
    assert feedback.commands[0].endswith("ok --progress json")


def test_runner_names_each_step_of_a_command_in_the_log(fake: list[str]) -> None:
    """export's steps are one progress step each: the bar moves from one to the next and the log names each."""
    feedback = Feedback()
    stages = {"load": (0, 15), "calibrate": (15, 5), "export": (20, 10), "quantize": (30, 65), "write": (95, 5)}
    runner.run_geoseg(fake, ["export"], feedback, runner.Progress(stages))
    assert feedback.progress == [0, 15, 15, 20, 20, 30, 30, 95, 95, 100]
    steps = ["load", "calibrate", "export", "quantize", "write"]
    assert [i for i in feedback.infos if i.endswith("…")] == [f"geoseg: {step}…" for step in steps]
    assert feedback.texts[-1] == "geoseg: write" and "geoseg: wrote m.onnx (4.7 MB)" in feedback.infos


def test_runner_reports_geosegs_one_line_error(fake: list[str]) -> None:
    feedback = Feedback()
    with pytest.raises(runner.GeosegError) as error:
        runner.run_geoseg(fake, ["fail"], feedback)
    assert str(error.value) == "geoseg: error: scene.tif does not exist: check the path"
    assert feedback.warnings == ["geoseg: warning: something odd"]
    with pytest.raises(runner.GeosegError, match=r"^geoseg usage: Error: No such option: --report \(is this geoseg too old"):
        runner.run_geoseg(fake, ["usage"], Feedback())
    with pytest.raises(runner.GeosegError) as error:  # a bad option value exits 2 with geoseg's line: shown as it is
        runner.run_geoseg(fake, ["badvalue"], Feedback())
    assert (
        str(error.value) == "geoseg: error: overlap 1.5 must be a fraction in [0, 1) of the chip, or pixels written like '64px'"
    )


@posix_only
def test_runner_names_the_signal_that_stopped_geoseg_not_its_last_warning(fake: list[str]) -> None:
    feedback = Feedback()
    with pytest.raises(runner.GeosegError) as error:
        runner.run_geoseg(fake, ["killed"], feedback)
    assert str(error.value) == (
        "geoseg killed was stopped by signal SIGKILL (out of memory? the system stops the largest process when memory "
        "runs out): reading scene.tif"
    )
    assert feedback.warnings == ["geoseg: warning: pixel size 20 m differs from the model's 10 m"]


def test_runner_runs_the_real_geoseg_to_a_clean_end() -> None:
    """The plugin starts geoseg with a stdin it watches (GEOSEG_STOP_WITH_STDIN): a command that finishes exits 0.
    A watcher reading through sys.stdin's buffer made every finished command abort at exit (SIGABRT)."""
    for _ in range(3):  # the abort came at interpreter shutdown, most of the time
        stdout = runner.run_geoseg([str(GEOSEG)], ["info", "default"], Feedback())
        assert any("chip" in line for line in stdout)


def test_runner_cancel_reaches_geoseg_without_signals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On Windows QGIS has no console to send Ctrl+Break through: the cancel reaches geoseg as the end of its stdin,
    and it stops as on Ctrl-C, well within the grace period (no forced kill), leaving no output."""
    monkeypatch.setattr(runner.os, "killpg", lambda *a: None)  # signals reach nothing, as on Windows
    monkeypatch.setattr(runner, "GRACE_S", 60.0)
    sample = Path(__file__).resolve().parents[1] / "data_samples" / "brandenburg_s2.tif"
    out = tmp_path / "classes.tif"
    feedback = Feedback(cancel_when=lambda f: bool(f.progress))
    started = time.monotonic()
    with pytest.raises(runner.Cancelled):
        runner.run_geoseg([str(GEOSEG)], ["predict", str(sample), "-m", "default", "-o", str(out)], feedback)
    assert time.monotonic() - started < 50 and sorted(tmp_path.iterdir()) == []


def test_runner_names_a_windows_crash_not_its_exit_number() -> None:
    """Windows ends a crashed process with an NTSTATUS code: 3221225477 is an access violation, said so."""
    messages = runner._Messages(Feedback(), runner.Progress())
    messages.last = "predict: 40% (4/10 chips)"
    said = messages.failure("predict", 3221225477)
    assert said == "geoseg predict crashed (access violation, 0xC0000005): predict: 40% (4/10 chips)"
    assert messages.failure("predict", 4) == "geoseg predict failed with exit code 4: predict: 40% (4/10 chips)"


def test_runner_shows_geosegs_line_for_a_real_bad_option_value(tmp_path: Path) -> None:
    args = ["vectorize", str(tmp_path / "classes.tif"), "-o", str(tmp_path / "p.gpkg"), "--min-area", "-1"]  # exits 2
    with pytest.raises(runner.GeosegError) as error:
        runner.run_geoseg([str(GEOSEG)], args, Feedback())
    assert str(error.value) == "geoseg: error: --min-area -1.0 must be zero or more square metres"


@posix_only
@pytest.mark.parametrize("stubborn", [False, True], ids=["terminated", "killed-after-grace"])
def test_runner_cancel_stops_the_whole_process_tree(fake: list[str], stubborn: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "GRACE_S", 0.5)
    started = lambda f: bool(f.progress) and any(i.startswith("pids") for i in f.infos)  # noqa: E731
    feedback = Feedback(cancel_when=started)
    with pytest.raises(runner.Cancelled, match="^cancelled: geoseg was stopped"):
        runner.run_geoseg(fake, ["hang", *(["--stubborn"] if stubborn else [])], feedback)
    pids = [int(p) for p in next(i for i in feedback.infos if i.startswith("pids")).split()[1:]]
    assert len(pids) == 2
    deadline = time.monotonic() + 5  # signals are sent when stop() returns; the kernel ends the processes soon after
    while [pid for pid in pids if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if alive(pid)]


# what geoseg tells the plugin ----------------------------------------------------------------------------------


def steps(stderr: str) -> list[tuple[str, int, int]]:
    """The progress lines of ``--progress json`` output."""
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [(e["stage"], e["done"], e["total"]) for e in events]


def test_export_tells_its_steps_as_progress(runner, unet_path: Path, scene4: Path, tmp_path: Path) -> None:
    """geoseg export, silent until it wrote the file, tells its steps as one progress step each (what the plugin
    shows); its other output is as it was: no line more in the log mode a pipe gets, stdout empty."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is in the dev extra: pip install -e '.[dev]'")
    from tests.helpers import run

    plain = run(runner, "export", unet_path, "-o", tmp_path / "plain.onnx")
    assert plain.exit_code == 0, plain.output
    assert plain.stdout == "" and plain.stderr.startswith(f"geoseg: wrote {tmp_path / 'plain.onnx'} (")
    assert len(plain.stderr.splitlines()) == 1
    told = run(runner, "export", unet_path, "-o", tmp_path / "float.onnx", "--progress", "json")
    assert told.exit_code == 0 and told.stdout == "", told.output
    assert steps(told.stderr) == [(stage, done, 1) for stage in ("load", "export", "write") for done in (0, 1)]
    assert told.stderr.splitlines()[-1].startswith("geoseg: wrote")
    args = ["export", unet_path, "-o", tmp_path / "int8.onnx", "--quantize", "int8", "--calibration", scene4]
    int8 = run(runner, *args, "--progress", "json")
    assert int8.exit_code == 0, int8.output
    stages = ("load", "calibrate", "export", "quantize", "write")
    assert steps(int8.stderr) == [(stage, done, 1) for stage in stages for done in (0, 1)]


# the plugin in QGIS ---------------------------------------------------------------------------------------------


def has_change() -> bool:
    """Whether this geoseg has the change command (written at the same time as the plugin)."""
    return subprocess.run([str(GEOSEG), "change", "--help"], capture_output=True, timeout=120).returncode == 0


@pytest.fixture(scope="module")
def qgis(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Install the built zip into a fresh QGIS profile and drive every algorithm once (about 30 s)."""
    tmp = tmp_path_factory.mktemp("qgis_plugin")
    zip_path = build(tmp / "geoseg-qgis.zip")
    work = tmp / "work"
    work.mkdir()
    args = [str(zip_path), str(tmp / "profile"), str(GEOSEG), str(SAMPLE), str(TRUTH), str(work)]
    command = [SYSTEM_PYTHON, "-W", "default::ResourceWarning", str(CLIENT), *args, *(["--change"] if has_change() else [])]
    done = subprocess.run(command, capture_output=True, text=True, env=qgis_env(tmp), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["stderr"] = done.stderr
    return report


def ok(report: dict, step: str) -> dict:
    result = report[step]
    assert "error" not in result, result.get("traceback", result)
    return result


LAYERS_CLIENT = textwrap.dedent(
    """
    import json, os, sys

    plugin_parent, geoseg, fake, work = sys.argv[1:5]
    from qgis.core import (
        QgsApplication, QgsProcessingContext, QgsProcessingFeatureSourceDefinition, QgsProcessingFeedback, QgsProject,
        QgsRasterLayer, QgsVectorLayer,
    )
    from qgis.gui import QgsMapLayerComboBox
    from qgis.PyQt import sip
    from qgis.PyQt.QtWidgets import QCheckBox, QComboBox

    app = QgsApplication([], True)  # with widgets (offscreen): the dialogs are built
    app.initQgis()
    sys.path[:0] = [plugin_parent, "/usr/share/qgis/python/plugins"]
    from processing.core.Processing import Processing

    Processing.initialize()
    import processing
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from geoseg_qgis.provider import GeosegProvider

    provider = GeosegProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    report = {}


    class Feedback(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.commands, self.infos, self.progress = [], [], []

        def pushCommandInfo(self, text):
            self.commands.append(text)

        def pushInfo(self, text):
            self.infos.append(text)

        def setProgress(self, value):
            self.progress.append(value)
            super().setProgress(value)


    def run(alg, params):
        feedback = Feedback()
        try:
            results = processing.run(alg, params, feedback=feedback)
        except Exception as exc:  # reported to the test
            return {"error": f"{type(exc).__name__}: {exc}"}
        metrics = json.loads(results.get("METRICS") or "{}")
        args = feedback.commands[0].split()[1:]
        return {"args": args, "pixels": metrics.get("pixels"), "infos": feedback.infos, "progress": feedback.progress}


    def count(path):
        return QgsVectorLayer(path, "copy", "ogr").featureCount()


    gpkg, pred = os.path.join(work, "truth.gpkg"), os.path.join(work, "pred.tif")
    fields = QgsVectorLayer(gpkg + "|layername=fields", "fields", "ogr")
    by_id = QgsVectorLayer(gpkg + "|layerid=1", "fields by id", "ogr")  # the same layer as QGIS may name it
    water = QgsVectorLayer(gpkg + "|layername=fields|subset=\\"kind\\" = 'water'", "water", "ogr")
    mask = QgsRasterLayer(pred, "mask")
    QgsProject.instance().addMapLayers([fields, by_id, water, mask])
    fields.selectByExpression("\\"kind\\" = 'forest'")
    selected = QgsProcessingFeatureSourceDefinition(fields.id(), True)
    truth = {"PRED": pred, "LABEL_FIELD": "kind", "EXECUTABLE": geoseg}
    report["evaluate"] = {
        "layer": run("geoseg:evaluate", {**truth, "TRUTH": fields}),
        "selected": run("geoseg:evaluate", {**truth, "TRUTH": selected}),
        "raster": run("geoseg:evaluate", {**truth, "TRUTH": mask, "LABEL_FIELD": None}),
    }
    tile = {"INPUT": pred, "OUTDIR": os.path.join(work, "chips"), "EXECUTABLE": fake}
    report["tile"] = {
        "selected": run("geoseg:tile", {**tile, "LABELS": selected}),
        "raster": run("geoseg:tile", {**tile, "LABELS": mask}),
        "none": run("geoseg:tile", tile),
    }
    predict = {"INPUT": pred, "OUTPUT": os.path.join(work, "classes.tif"), "EXECUTABLE": fake}
    report["aoi"] = {name: run("geoseg:predict", {**predict, "AOI": layer}) for name, layer in
                     (("layer", fields), ("by_id", by_id), ("subset", water), ("selected", selected))}
    for runs in (report["tile"], report["aoi"]):
        for name, result in runs.items():
            if "--labels" in result.get("args", []) or "--aoi" in result.get("args", []):
                option = "--labels" if "--labels" in result["args"] else "--aoi"
                result["features"] = count(result["args"][result["args"].index(option) + 1])
    export = {"MODEL": "default", "OUTPUT": os.path.join(work, "m.onnx"), "EXECUTABLE": fake}
    report["export"] = run("geoseg:export", {**export, "QUANTIZE": True, "CALIBRATION": pred})

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())


    def dialog(alg, name):  # the layer list, the check box's state, the values for the selection and for a raster
        dialog = AlgorithmDialog(QgsApplication.processingRegistry().algorithmById(alg).create(), False, None)
        wrapper = dialog.mainWidget().wrappers[name]
        widget = wrapper.wrappedWidget()
        layers = next(c for c in widget.findChildren(QComboBox) if c.metaObject().className() == "QgsMapLayerComboBox")
        layers = sip.cast(layers, QgsMapLayerComboBox)
        boxes = [box for box in widget.findChildren(QCheckBox) if box.text() == "Selected features only"]
        wrapper.setParameterValue(fields.id(), context)
        enabled = [box.isEnabled() for box in boxes]
        for box in boxes:
            box.setChecked(True)
        value = dialog.createProcessingParameters()[name]
        wrapper.setParameterValue(mask.id(), context)
        return {
            "listed": sorted(layers.itemText(i).split(" [")[0] for i in range(layers.count()) if layers.itemText(i)),
            "enabled": enabled,
            "selected": [type(value).__name__, getattr(value, "selectedFeaturesOnly", None)],
            "raster": dialog.createProcessingParameters()[name] == mask.id(),
        }


    dialogs = {}
    for alg, name in (("geoseg:evaluate", "TRUTH"), ("geoseg:tile", "LABELS")):
        try:
            dialogs[alg] = dialog(alg, name)
        except Exception as exc:  # reported to the test
            dialogs[alg] = {"error": f"{type(exc).__name__}: {exc}"}
    report["dialogs"] = dialogs
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from processing.modeler.ModelerParametersDialog import ModelerParametersDialog
    from qgis.core import QgsProcessingModelAlgorithm

    try:  # batch and model dialogs get QGIS's own layer widget
        alg = QgsApplication.processingRegistry().algorithmById("geoseg:tile")
        batch = BatchAlgorithmDialog(alg.create())
        modeler = ModelerParametersDialog(alg.create(), QgsProcessingModelAlgorithm("m", "g"))
        report["other_dialogs"] = [type(batch).__name__, type(modeler).__name__]
    except Exception as exc:  # reported to the test
        report["other_dialogs"] = f"{type(exc).__name__}: {exc}"
    evaluate = QgsApplication.processingRegistry().algorithmById("geoseg:evaluate").create()
    report["python"] = evaluate.asPythonCommand({"PRED": pred, "TRUTH": selected}, context)  # the history's line
    print(json.dumps(report), flush=True)
    os._exit(0)  # QGIS 3.22 may crash in exitQgis() when headless; the report is complete
    """
)
FAKE_GEOSEG = textwrap.dedent(
    """
    import json, sys

    args = sys.argv[1:]
    if args == ["--version"]:
        print("geoseg, version 9.9.9")
    elif "--json" in args:  # evaluate: the metrics it reads back
        open(args[args.index("--json") + 1], "w").write("{}")
    elif args[0] == "export":
        stages = ["load", "calibrate", "export", "quantize", "write"]
        for stage in stages if "--calibration" in args else [s for s in stages if s not in ("calibrate", "quantize")]:
            for done in (0, 1):
                sys.stderr.write(json.dumps({"stage": stage, "done": done, "total": 1}) + "\\n")
    """
)


@pytest.fixture(scope="module")
def layers_in_qgis(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The plugin in QGIS with layers as users have them: a GeoPackage of two layers (lines first, the truth
    polygons second, named by name, by id, filtered), a selection of the polygons, a raster; evaluate run by geoseg,
    the rest by a fake that says what it was given (about 3 s)."""
    import geopandas as gpd
    import numpy as np
    import rasterio
    import shapely

    from geoseg.core.classes import CLASSES_TAG
    from tests.helpers import UTM33, write_raster

    work = tmp_path_factory.mktemp("qgis_layers")
    pred = np.full((40, 50), 255, np.uint8)
    pred[4:, :25], pred[4:, 25:] = 0, 1  # forest left, water right, nodata in rows 0..3
    write_raster(work / "pred.tif", pred, nodata=255)
    table = [{"id": 0, "name": "forest", "color": "#1b7837"}, {"id": 1, "name": "water", "color": "#1f78b4"}]
    with rasterio.open(work / "pred.tif", "r+") as ds:
        ds.update_tags(**{CLASSES_TAG: json.dumps(table)})
    x0, y0 = 330000.0, 5822040.0  # write_raster's grid: 10 m pixels

    def cells(col0: int, row0: int, col1: int, row1: int) -> shapely.Polygon:
        return shapely.box(x0 + col0 * 10, y0 - row1 * 10, x0 + col1 * 10, y0 - row0 * 10)

    line = shapely.LineString([(x0, y0 - 5), (x0 + 400, y0 - 5)])
    gpd.GeoDataFrame({"kind": ["edge"]}, geometry=[line], crs=UTM33).to_file(work / "truth.gpkg", layer="roads")
    polygons = [cells(0, 4, 25, 40), cells(25, 4, 50, 40)]  # 900 pixels each
    gpd.GeoDataFrame({"kind": ["forest", "water"]}, geometry=polygons, crs=UTM33).to_file(work / "truth.gpkg", layer="fields")
    fake = work / "fake_geoseg"
    fake.write_text(f"#!{sys.executable}\n{FAKE_GEOSEG}")
    fake.chmod(0o755)
    client = work / "client.py"
    client.write_text(LAYERS_CLIENT)
    command = [SYSTEM_PYTHON, str(client), str(PLUGIN.parent), str(GEOSEG), str(fake), str(work)]
    done = subprocess.run(command, capture_output=True, text=True, env=qgis_env(work), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["work"] = str(work)
    return report


@needs_qgis
def test_truth_and_labels_take_selected_features_or_a_raster(layers_in_qgis: dict) -> None:
    """evaluate's TRUTH and tile's LABELS, which also take rasters, take a vector layer's selected features as the
    AOI does: geoseg scores the selected polygon only (900 of 1800 pixels) and cuts chips of the selected labels."""
    evaluate = layers_in_qgis["evaluate"]
    for name in ("layer", "selected", "raster"):
        assert "error" not in evaluate[name], evaluate[name]
    assert evaluate["layer"]["pixels"] == 1800 and evaluate["raster"]["pixels"] == 1800
    assert evaluate["selected"]["pixels"] == 900
    truth = evaluate["selected"]["args"][2]
    assert truth.endswith(".gpkg") and not truth.startswith(str(Path(layers_in_qgis["work"]) / "truth.gpkg"))  # a copy
    assert evaluate["raster"]["args"][2] == str(Path(layers_in_qgis["work"]) / "pred.tif")
    tile = layers_in_qgis["tile"]
    assert "error" not in tile["selected"], tile["selected"]
    assert tile["selected"]["features"] == 1
    labels = tile["raster"]["args"]
    assert labels[labels.index("--labels") + 1] == str(Path(layers_in_qgis["work"]) / "pred.tif")
    assert "--labels" not in tile["none"]["args"]
    assert "'TRUTH':QgsProcessingFeatureSourceDefinition(" in layers_in_qgis["python"]
    assert "selectedFeaturesOnly=True" in layers_in_qgis["python"]


@needs_qgis
def test_dialogs_offer_selected_features_only_for_truth_and_labels(layers_in_qgis: dict) -> None:
    """The dialog's TRUTH and LABELS list rasters and vector layers and have QGIS's 'Selected features only',
    which gives the selection (a feature source); a raster gives its layer."""
    dialogs = layers_in_qgis["dialogs"]
    assert dialogs["geoseg:evaluate"]["listed"] == ["fields", "fields by id", "mask", "water"]  # polygons and rasters
    for name, dialog in dialogs.items():
        assert "error" not in dialog, dialog
        assert dialog["enabled"] == [True], name  # the layer has selected features
        assert dialog["selected"] == ["QgsProcessingFeatureSourceDefinition", True], name
        assert dialog["raster"], name
    assert layers_in_qgis["other_dialogs"] == ["BatchAlgorithmDialog", "ModelerParametersDialog"]


@needs_qgis
def test_a_layer_of_a_geopackage_is_named_not_copied(layers_in_qgis: dict) -> None:
    """geoseg reads file.gpkg|layername=x: such a layer is handed over as it is, and copied only when geoseg could
    not read it so (a selection, a filter, a layer QGIS names by number)."""
    gpkg = str(Path(layers_in_qgis["work"]) / "truth.gpkg")
    assert layers_in_qgis["evaluate"]["layer"]["args"][2] == f"{gpkg}|layername=fields"  # read by geoseg: 1800 px
    aoi = layers_in_qgis["aoi"]
    assert aoi["layer"]["args"][aoi["layer"]["args"].index("--aoi") + 1] == f"{gpkg}|layername=fields"
    for name, features in (("by_id", 2), ("subset", 1), ("selected", 1)):
        args = aoi[name].get("args", [])
        assert "--aoi" in args and not args[args.index("--aoi") + 1].startswith(gpkg), (name, aoi[name])
        assert aoi[name]["features"] == features, name


@needs_qgis
def test_export_moves_the_bar_step_by_step_and_names_the_steps(layers_in_qgis: dict) -> None:
    """geoseg:export follows export's steps (static int8: most of the bar is quantizing) and names each in the log."""
    export = layers_in_qgis["export"]
    assert "error" not in export, export
    progress = export["progress"]
    assert progress == sorted(progress) and progress[-1] == 100 and len(set(progress)) >= 5
    named = [info for info in export["infos"] if info.endswith("…")]
    assert named == [f"geoseg: {step}…" for step in ("load", "calibrate", "export", "quantize", "write")]


@needs_qgis
@pytest.mark.slow
def test_plugin_installs_from_zip_and_offers_every_algorithm(qgis: dict) -> None:
    install = ok(qgis, "install")
    assert install["available"] == ["geoseg_qgis"] and install["started"]
    assert install["metadata"] == {"name": "geoseg", "version": project_version(), "hasProcessingProvider": "yes"}
    provider = ok(qgis, "provider")
    assert provider["name"] == "geoseg" and provider["setting"]
    algorithms = provider["algorithms"]
    assert set(algorithms) == ALGORITHMS
    run = algorithms["geoseg:run"]
    assert {"INPUT", "MODEL", "OUTDIR", "EXECUTABLE", "BANDS", "CHIP_SIZE", "OVERLAP", "MIN_AREA", "SIMPLIFY"} <= set(
        run["parameters"]
    )
    assert {"BACKEND", "DEVICE", "AOI", "OVERWRITE"} <= set(run["parameters"])
    assert {"CLASSES", "POLYGONS"} <= set(run["outputs"])
    assert {"BEFORE", "AFTER", "MODEL", "CLASSES", "MIN_AREA", "SIMPLIFY", "OUTDIR"} <= set(
        algorithms["geoseg:change"]["parameters"]
    )
    assert {"PRED", "TRUTH", "LABEL_FIELD", "REPORT", "JSON"} <= set(algorithms["geoseg:evaluate"]["parameters"])
    assert {"MEAN_IOU", "ACCURACY", "METRICS", "ERRORS"} <= set(algorithms["geoseg:evaluate"]["outputs"])
    for name, algorithm in algorithms.items():
        assert "EXECUTABLE" in algorithm["parameters"], name
        assert "geoseg executable" in algorithm["help"] and "<b>Output" in algorithm["help"], name
    assert qgis["unload"]["unloaded"] and not qgis["unload"]["provider"]


@needs_qgis
@pytest.mark.slow
def test_run_loads_a_paletted_class_map_and_categorized_polygons(qgis: dict) -> None:
    run = ok(qgis, "run")
    outdir = Path(run["results"]["OUTDIR"])
    assert run["results"]["CLASSES"] == str(outdir / "classes.tif")
    assert run["results"]["POLYGONS"] == str(outdir / "polygons.gpkg")
    assert {"classes.tif", "polygons.gpkg", "run.json"} <= set(run["files"])
    names = ["forest", "farm", "meadow", "grass", "scrub", "wetland", "water", "residential"]
    classes = run["layers"]["classes"]
    assert classes["valid"] and classes["renderer"] == "paletted"
    assert [c[1] for c in classes["classes"]] == names
    polygons = run["layers"]["polygons"]
    assert polygons["valid"] and polygons["renderer"] == "categorizedSymbol" and polygons["count"] > 0
    assert [c[1] for c in polygons["categories"]] == names
    assert [c[2] for c in polygons["categories"]] == [c[2] for c in classes["classes"]]
    progress = run["progress"]
    progress = progress[: progress.index(100) + 1]  # QGIS then counts 0..100 again while it loads the layers
    assert len(progress) >= 5 and progress[0] == 15 and progress == sorted(progress)  # the cloud mask: the first 15%
    assert run["commands"][0].endswith("--mask-clouds --min-area 300 --overwrite --progress json")
    clouds = next(layer for name, layer in run["layers"].items() if name.endswith("clouds"))
    assert clouds["valid"] and clouds["renderer"] == "paletted" and run["results"]["CLOUDS"] == str(outdir / "clouds.tif")
    assert [c[1] for c in clouds["classes"]] == ["clear", "cloud", "cloud shadow"]


@needs_qgis
@pytest.mark.slow
def test_evaluate_returns_the_metrics_and_loads_the_error_map(qgis: dict, tmp_path: Path) -> None:
    evaluate = ok(qgis, "evaluate")
    classes = ok(qgis, "run")["results"]["CLASSES"]
    direct = tmp_path / "metrics.json"
    done = subprocess.run(
        [str(GEOSEG), "evaluate", classes, str(TRUTH), "--label-field", "fclass", "--json", str(direct), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    expected = json.loads(direct.read_text())
    results = evaluate["results"]
    assert results["MEAN_IOU"] == pytest.approx(expected["mean_iou"])
    assert results["ACCURACY"] == pytest.approx(expected["accuracy"])
    assert results["PIXELS"] == expected["pixels"]
    assert json.loads(results["METRICS"])["confusion_matrix"] == expected["confusion_matrix"]
    errors = evaluate["layers"]["errors"]
    assert results["ERRORS"].endswith("errors.tif") and errors["renderer"] == "paletted"
    assert errors["classes"][0][1] == "correct"  # errors.qml applied


@needs_qgis
@pytest.mark.slow
def test_predict_and_vectorize_load_styled_layers_from_the_class_table(qgis: dict) -> None:
    predict = ok(qgis, "predict")
    layer = predict["layers"]["classes"]
    assert layer["renderer"] == "paletted" and layer["classes"][6][1:] == ["water", "#2166ac"]
    command = predict["commands"][0]
    assert "--overlap 0 --batch-size 4" in command
    aoi = command.split("--aoi ")[1].split()[0]
    assert aoi == f"{TRUTH}|layername={TRUTH.stem}"  # the GeoPackage's layer as QGIS names it, read so by geoseg
    vectorize = ok(qgis, "vectorize")
    shapes = vectorize["layers"]["p"]
    assert shapes["source"].endswith("p.shp") and shapes["count"] > 0
    assert shapes["renderer"] == "categorizedSymbol" and shapes["categories"][6][1:] == ["water", "#2166ac"]


@needs_qgis
@pytest.mark.slow
def test_tile_train_and_export_pass_their_options(qgis: dict) -> None:
    tile = ok(qgis, "tile")
    assert {"images", "masks", "index.gpkg", "tile.json"} <= set(tile["files"])
    assert tile["layers"]["index"]["valid"] and tile["layers"]["index"]["count"] > 0
    assert f"--labels {TRUTH} --label-field fclass --chip-size 256 --overlap 0 --min-labeled 0 --buffer 5" in tile["commands"][0]
    arguments = ok(qgis, "arguments")
    train, export = arguments["train"], arguments["export"]
    assert train["args"][0] == "train" and train["args"][2:] == [
        "-o",
        train["results"]["OUTDIR"],
        "--resume",
        "--progress",
        "json",
    ]
    assert train["results"]["MODEL"] == str(Path(train["results"]["OUTDIR"]) / "model.pt")
    output = export["results"]["OUTPUT"]
    assert export["args"] == [
        "export",
        "default",
        "-o",
        output,
        "--chip-size",
        "128",
        "--smooth",
        "4",
        "--quantize",
        "int8",
        "--calibration",
        str(SAMPLE),
        "--overwrite",
        "--progress",
        "json",
    ]


@needs_qgis
@pytest.mark.slow
def test_dialogs_build_and_their_empty_fields_pass_nothing(qgis: dict) -> None:
    dialog = ok(qgis, "dialog")
    assert dialog["built"] == {name: "needs CONFIG" if name == "geoseg:train" else "ok" for name in ALGORITHMS}
    assert {"CLASSES", "EXECUTABLE"} <= set(dialog["vectorize_unset"])  # what an empty field gives
    for command in dialog["commands"].values():
        assert "NULL" not in command and "None" not in command
        assert command.endswith("--overwrite --progress json")


@needs_qgis
@pytest.mark.slow
def test_change_loads_transitions_and_changes(qgis: dict) -> None:
    if "change" not in qgis:
        pytest.skip("this geoseg has no change command yet (geoseg change --help fails)")
    change = ok(qgis, "change")
    assert {"transitions.tif", "transitions.qml", "changes.gpkg"} <= set(change["files"])
    assert change["layers"]["transitions"]["renderer"] == "paletted"
    assert change["layers"]["changes"]["renderer"] == "categorizedSymbol" and change["layers"]["changes"]["count"] > 0


@needs_qgis
@pytest.mark.slow
def test_cancel_stops_geoseg(qgis: dict) -> None:
    cancel = ok(qgis, "cancel")
    assert cancel["message"].startswith("cancelled: geoseg was stopped")
    assert cancel["children"], "geoseg was not running when the first progress line came"
    assert cancel["alive"] == []
    assert not cancel["complete"]


@needs_qgis
@pytest.mark.slow
def test_errors_say_what_to_set(qgis: dict) -> None:
    errors = ok(qgis, "errors")
    assert errors["missing"].startswith("the geoseg executable /nonexistent/geoseg given in the 'geoseg executable' parameter")
    assert "Settings > Options > Processing > Providers > geoseg" in errors["missing"]
    assert "is geoseg 0.1.0, older than this plugin needs (0.2.0)" in errors["old"]
    assert errors["not_on_path"].startswith("geoseg was not found on PATH")
    assert errors["geoseg"].startswith("geoseg: error: labels") and "no_such_field" in errors["geoseg"]
    assert "\n" not in errors["geoseg"]


@needs_qgis
@pytest.mark.slow
def test_plugin_leaves_no_unclosed_files(qgis: dict) -> None:
    assert "ResourceWarning" not in qgis["stderr"]
    assert "Traceback" not in qgis["stderr"]


@needs_qgis
@pytest.mark.slow
def test_nodata_and_crs_set_in_qgis_reach_geoseg(qgis: dict) -> None:
    layers = ok(qgis, "layers")
    predicted = layers["predict"]
    assert "exception" not in predicted, predicted
    assert layers["shares"] == {"border": 0.0, "aoi": 1.0, "outside": 0.0}  # the added nodata value, the AOI's CRS
    assert layers["srs"] == "32633"  # the scene's CRS, assigned in QGIS
    command = predicted["commands"][0]
    assert "border.vrt" in command and "aoi.shp" not in command  # the layer as QGIS shows it, not its files
    polygons = next(iter(layers["vectorize"]["layers"].values()))
    assert polygons["renderer"] == "categorizedSymbol" and polygons["count"] > 0  # not border_classes.qml, the map's
    assert layers["empty"] == "AOI: lower half has no features (with 'selected features only': select some first)"
