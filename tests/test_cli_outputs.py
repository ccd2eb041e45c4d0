"""The command lines' outputs: names that cannot collide, reruns that recognise an object by its
input, nothing written outside the output folder and the user's cache, one line for Ctrl-C and
for user errors, library warnings off the console, repairs on the console and in the table."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import trimesh

from jaxgrasp.cli.common import LogFile, library_messages_to
from jaxgrasp.cli.hand_info import hand_label
from jaxgrasp.cli.hand_info import main as hand_info_main
from jaxgrasp.cli.jobs import Job, collect_jobs, output_for, path_tag
from jaxgrasp.cli.plan import main as plan_main
from jaxgrasp.hand import annotate
from jaxgrasp.hand.mjcf import HandLoadError, resolve_hand_path, robots_dir
from jaxgrasp.hand.model import load_hand

# Few steps and starts, and the smallest bundled hand (it compiles in half the Shadow Hand's
# time): the run's mechanics are under test, not the grasps.
FAST = ["--steps", "5", "--starts", "2", "--no-pictures", "--hand", "parallel_jaw"]
BOX = trimesh.creation.box(extents=(0.05, 0.06, 0.08))

ONE_FINGER = """<mujoco model="right_hand">
  <worldbody>
    <body name="palm">
      <geom type="box" size="0.04 0.01 0.05" pos="0 0 0.05"/>
      <body name="finger" pos="0 0 0.1">
        <joint name="j1" axis="1 0 0" range="0 1.5"/>
        <geom type="capsule" size="0.009" fromto="0 0 0.005 0 0 0.04"/>
      </body>
    </body>
  </worldbody>
</mujoco>
"""


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_names_never_collide(tmp_path):
    folder = tmp_path / "scans"
    for rel in ("a/mug.stl", "b/mug.stl", "cup.stl", "cup.obj", "Bowl.stl", "bowl.ply", "notes.txt"):
        _touch(folder / rel)
    jobs = collect_jobs([str(folder)])
    names = [j.name for j in jobs]
    assert len({n.casefold() for n in names}) == len(names) == 6
    assert {"a/mug", "b/mug"} <= set(names)  # relative paths: distinct without a tag
    tagged = [n for n in names if n.split("-")[0] in ("cup", "Bowl", "bowl")]
    assert len(tagged) == 4 and all(len(n.split("-")[1]) == 8 for n in tagged)
    assert all(not Path(n).is_absolute() and ".." not in Path(n).parts for n in names)
    assert [j.name for j in collect_jobs([str(folder)])] == names  # the same names on a rerun
    # The same stem given as two files, and the same file reached twice.
    x, y = _touch(tmp_path / "x" / "mug.stl"), _touch(tmp_path / "y" / "mug.stl")
    jobs = collect_jobs([str(x), str(y), str(x)])
    assert [j.name for j in jobs] == [f"mug-{path_tag(x.resolve())}", f"mug-{path_tag(y.resolve())}"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        collect_jobs([str(tmp_path / "missing")])


def test_a_rerun_recognises_an_object_by_its_input(tmp_path):
    out = tmp_path / "out"
    mine = _touch(tmp_path / "a" / "mug.stl", "one")
    other = _touch(tmp_path / "b" / "mug.stl", "two")
    job = collect_jobs([str(mine)])[0]
    ident = job.identity("m")
    assert ident == {"path": str(mine.resolve()), "sha256": hashlib.sha256(b"one").hexdigest(), "units": "m"}
    assert output_for(job, ident, out) == ("mug", "new")
    _touch(out / "mug.json", json.dumps({"input": ident}))
    assert output_for(job, ident, out) == ("mug", "done")
    assert output_for(job, job.identity("mm"), out) == ("mug", "changed")  # other units
    mine.write_text("one, edited")
    assert output_for(job, job.identity("m"), out) == ("mug", "changed")  # other content
    # A file of the same name from another folder never takes the first one's results.
    job2 = collect_jobs([str(other)])[0]
    tag = f"mug-{path_tag(other.resolve())}"
    assert output_for(job2, job2.identity("m"), out) == (tag, "new")
    _touch(out / f"{tag}.json", json.dumps({"input": job2.identity("m")}))
    assert output_for(job2, job2.identity("m"), out) == (tag, "done")
    # Files of earlier versions (no recorded input): the object's file decides; unreadable: replace.
    (out / "mug.json").write_text(json.dumps({"object": {"file": str(other)}}))
    assert output_for(job, job.identity("m"), out) == (f"mug-{path_tag(mine.resolve())}", "new")
    (out / "mug.json").write_text("{not json")
    assert output_for(job, job.identity("m"), out) == ("mug", "changed")


def test_a_bundled_name_is_never_a_users_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shadow").mkdir()  # e.g. the output folder of `--out shadow`
    assert resolve_hand_path("shadow") == (robots_dir() / "shadow" / "shadow.xml").resolve()
    with pytest.raises(HandLoadError, match="folder with 0 MJCF/URDF files"):
        resolve_hand_path("./shadow")


def test_hands_write_only_to_the_output_folder_and_the_user_cache(tmp_path, monkeypatch, capsys):
    """`python -m jaxgrasp --hand FILE`: the annotation cache goes to the user's cache, not beside
    the hand file, and hand files of the same name get distinct pictures."""
    monkeypatch.setenv("JAXGRASP_CACHE", str(tmp_path / "cache"))
    hands = tmp_path / "menagerie"
    a = _touch(hands / "one_hand" / "right_hand.xml", ONE_FINGER)
    b = _touch(hands / "other_hand" / "right_hand.xml", ONE_FINGER.replace("0.04 0.01", "0.05 0.01"))
    before = _files(hands)
    out = tmp_path / "out"
    assert hand_info_main(["--hand", str(a), "--out", str(out)]) == 0
    assert hand_info_main(["--hand", str(b), "--out", str(out)]) == 0
    assert _files(hands) == before
    assert sorted(p.name for p in out.iterdir()) == ["one_hand_right_hand_fk.png", "other_hand_right_hand_fk.png"]
    cached = sorted((tmp_path / "cache" / "annotations").glob("right_hand.annotations.*.npz"))
    assert len(cached) == 2
    assert hand_label(robots_dir() / "shadow" / "shadow.xml") == "shadow"
    # A second load reads the user's cache (nothing is computed again).
    monkeypatch.setattr(annotate, "compute_annotations", lambda *a, **k: pytest.fail("cache not used"))
    load_hand(str(a))
    capsys.readouterr()
    assert hand_info_main(["--hand", str(tmp_path / "nope.xml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m jaxgrasp: error: HandLoadError: no hand file")


def test_library_messages_stay_off_the_console(tmp_path, capfd):
    handler = LogFile()
    with library_messages_to(handler):
        logging.getLogger("trimesh.sample").warning("only got 203/256 samples!")
        warnings.warn("a library's deprecation notice", DeprecationWarning, stacklevel=1)
    handler.open(tmp_path / "plan.log")
    handler.close()
    captured = capfd.readouterr()
    assert "only got" not in captured.out + captured.err and "deprecation" not in captured.err
    text = (tmp_path / "plan.log").read_text()
    assert "only got 203/256 samples!" in text and "a library's deprecation notice" in text


def test_cli_end_to_end_names_repairs_exit_status_and_resume(tmp_path, capsys):
    objs, out = tmp_path / "objs", tmp_path / "out"
    (objs / "a").mkdir(parents=True)
    (objs / "b").mkdir()
    BOX.export(objs / "a" / "box.stl")
    trimesh.Trimesh(BOX.vertices, BOX.faces.tolist() * 2, process=False).export(objs / "b" / "box.stl")
    (objs / "broken.obj").write_text("this is not a mesh\n")
    inputs = _files(objs)
    t0 = time.perf_counter()
    assert plan_main([str(objs), "--out", str(out), *FAST]) == 1  # one object failed
    first = time.perf_counter() - t0
    text = capsys.readouterr()
    console = (text.out + text.err).replace("\r", "\n")
    assert "Traceback" not in console
    assert "b/box: repaired: dropped 12 duplicated / back-to-back faces" in console
    assert "broken: FAILED: ValueError: mesh file" in console and "no triangles" in console
    table = text.out.splitlines()
    assert any(line.startswith("b/box") and line.endswith("1 repair") for line in table), text.out
    assert any(line.startswith("broken") and " error " in line for line in table)
    assert "1 object failed" in text.out and "lengths in the grasp files: metres" in text.out
    assert _files(objs) == inputs  # nothing written beside the inputs
    assert _files(out) == {"a", "a/box.json", "b", "b/box.json", "errors.log", "plan.log"}
    plans = {}
    for name in ("a", "b"):
        raw = (out / name / "box.json").read_text()
        assert "NaN" not in raw and "Infinity" not in raw
        plans[name] = json.loads(raw)
        assert plans[name]["input"]["path"] == str((objs / name / "box.stl").resolve())
        assert plans[name]["units"]["lengths"] == "m"
    assert plans["a"]["input"]["sha256"] != plans["b"]["input"]["sha256"]
    assert "dropped 12 duplicated / back-to-back faces" in plans["b"]["grasps"][0]["load_report"]["repairs"]
    stamps = {n: (out / n / "box.json").stat().st_mtime_ns for n in ("a", "b")}

    # Rerun: both recognised by their input, the broken file fails again (exit status 1).
    assert plan_main([str(objs), "--out", str(out), *FAST]) == 1
    text = capsys.readouterr()
    assert "a/box: done before, skipped" in text.err + text.out and "b/box: done before" in text.err + text.out
    assert {n: (out / n / "box.json").stat().st_mtime_ns for n in ("a", "b")} == stamps

    # A changed file is planned again (and what the loader found shows in the table).
    trimesh.Trimesh(BOX.vertices, BOX.faces[:-2], process=False).export(objs / "b" / "box.stl")
    (objs / "broken.obj").unlink()
    assert plan_main([str(objs), "--out", str(out), *FAST]) == 0
    text = capsys.readouterr()
    console = (text.out + text.err).replace("\r", "\n")
    assert "b/box: found: not watertight" in console
    assert any(line.startswith("b/box") and "open (winding-number sign)" in line for line in text.out.splitlines())
    assert (out / "a" / "box.json").stat().st_mtime_ns == stamps["a"]
    assert (out / "b" / "box.json").stat().st_mtime_ns != stamps["b"]
    print(f"first run {first:.1f} s")


def test_ctrl_c_ends_a_run_with_one_line(tmp_path):
    objs, out = tmp_path / "objs", tmp_path / "out"
    objs.mkdir()
    BOX.export(objs / "box.stl")
    proc = subprocess.Popen([sys.executable, "-m", "jaxgrasp.plan", str(objs), "--out", str(out),
                             "--steps", "100000", "--starts", "2", "--no-pictures"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    deadline = time.monotonic() + 120
    while not (out / "plan.log").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # the log file opens once the hand is loaded: planning starts
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip() and "planning:" not in line]
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr + stdout
    assert lines == ["interrupted: 0 of 1 objects done; rerun the same command to plan the others"]
    assert not list(out.rglob("*.json")) and not list(out.rglob("*.tmp"))


def test_output_folder_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    target = _touch(tmp_path / "out")
    mesh = tmp_path / "box.stl"
    BOX.export(mesh)
    assert plan_main([str(mesh), "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: NotADirectoryError: --out {target} is a file; pass a folder for the results"
    assert isinstance(collect_jobs([str(mesh)])[0], Job)
