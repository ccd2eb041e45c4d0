"""Jobs killed at any moment (SIGKILL: no handler runs, nothing is cleaned up) and restarted end
exactly as an uninterrupted run with the same seed does, and no partial file is ever read as
complete (issue 25, point 4).

Each of the three resumable jobs (``python -m jaxgrasp.plan FOLDER``, ``python -m
jaxgrasp.dataset build``, ``python -m jaxgrasp.train --resume``) runs once uninterrupted into a
reference folder, and several times into another folder, each run SIGKILLed (its whole process
group) at a moment drawn from a seeded ``numpy`` Generator: a uniform delay after the process's
start (it dies inside ``import jax``) or after a stage of the job shows on its console or in
its log (compiling and optimizing, planning the ground truth, rendering, an epoch's log line:
the kill then lands in that epoch's checkpoint write), each run resuming what the previous ones
left. Two processes run at a time, one of them from a background thread: a run is mostly
single-threaded Python (importing JAX, tracing), and the second keeps the second core busy.
Then files are planted as a kill
mid-write would leave them with a non-atomic writer (a truncated plan JSON, ``.npz`` and log
line, a killed writer's temporary), and a last run goes to the end. Its outputs must equal the
reference's bit for bit (JSON numbers parse to the same float64, arrays are equal); only
wall-time fields are left out. How many kills landed on a live process, and what each left on
disk, is printed (``pytest -s``).

The other tests kill a writer in the middle of its write (a payload whose serialisation
SIGKILLs its own process) and check that the file is absent rather than partial, that the
temporary is never read as the file and is removed by the next write; that a resumed training
log keeps one line per finished epoch; and that an unfinished Orbax checkpoint is never the
latest step.

Tiny settings keep each run a few seconds once the compiled code cache is warm: the
parallel-jaw hand, 5 planner steps, 16 x 16 depth images of one view, 2 training steps per
epoch (most of a run's time is importing JAX and tracing the jitted functions).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
import trimesh

from jaxgrasp.cli.jobs import collect_jobs, output_for
from jaxgrasp.learning import checkpoint as C
from jaxgrasp.learning.atomic import write_npz
from jaxgrasp.learning.data import _read_npz
from jaxgrasp.learning.train import _trim_log

ROOT = Path(__file__).resolve().parents[1]
SEED = 25
ATTEMPT_TIMEOUT_S = 180  # one run, cold compile cache included
# Wall-time fields of the outputs: everything else must be equal.
TIME_KEYS = ("time_s", "time_to_first_valid_s")


def _env() -> dict:
    # The subprocesses import the package of this checkout whatever their working folder.
    path = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


# ----------------------------------------------------------------------------------------------
# Killing and restarting
# ----------------------------------------------------------------------------------------------


class _Console:
    """A run's console file, read incrementally while the run writes it."""

    def __init__(self, path: Path):
        self.path, self.text, self._pos = path, "", 0

    def read(self) -> str:
        """What was added since the last call."""
        with open(self.path, "rb") as f:
            f.seek(self._pos)
            chunk = f.read()
        self._pos += len(chunk)
        new = chunk.decode("utf-8", "replace")
        self.text += new
        return new

    def status(self) -> str:
        """The last status the run showed (tqdm's bar and postfix, or a log line)."""
        self.read()
        parts = [p.strip() for p in re.split(r"[\r\n]", self.text[-2000:]) if p.strip()]
        return parts[-1][-110:] if parts else "(nothing printed yet)"


@dataclasses.dataclass(frozen=True)
class Kill:
    """When to kill a run: at a delay drawn uniformly in ``[0, max_delay_s]`` after ``stage``
    shows on its console (or in ``file``).

    Attributes:
        stage: a regular expression searched in the run's console output (stdout and stderr
            together, tqdm's status included); "" means the process's start.
        max_delay_s: upper end of the uniform delay after the stage.
        file: search this output file instead of the console (a line the job appends; with
            ``stage`` "", its appearance).
    """

    stage: str
    max_delay_s: float
    file: Path | None = None

    def seen(self, console: _Console) -> bool:
        if self.file is not None:
            if not self.stage:
                return self.file.exists()
            return self.file.exists() and re.search(self.stage, self.file.read_text(errors="replace")) is not None
        # (the new text and the end of the old one, where the stage's text may have begun)
        return re.search(self.stage, console.text[-200:] + console.read()) is not None


_live: set[subprocess.Popen] = set()  # the runs going on (killed when the module's runs end early)
_stopping = threading.Event()


def _start(cmd: list[str], console: Path, cwd: Path) -> subprocess.Popen:
    if _stopping.is_set():
        raise RuntimeError("not started: the tests that needed this run have ended")
    with open(console, "wb") as f:
        # A session of its own: the kill takes the whole process group (any child with it).
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=_env(),
                                start_new_session=True)
    _live.add(proc)
    return proc


def _end(proc: subprocess.Popen, timeout: float | None = None) -> int:
    """Waits for ``proc`` (at most ``timeout`` s), kills what is left of its group; its status."""
    try:
        return proc.wait(timeout=timeout)
    finally:
        _kill_group(proc)
        proc.wait()
        _live.discard(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # ended on its own meanwhile
        pass


def _stop_all() -> None:
    _stopping.set()
    for proc in list(_live):
        _kill_group(proc)


def run_killed(cmd: list[str], kills: list[Kill], logs: Path, cwd: Path, rng: np.random.Generator,
               out: Path) -> list[dict]:
    """Starts ``cmd`` once per kill and SIGKILLs it at the kill's moment (each run resumes the
    previous one's outputs in ``out``); returns what happened to each run."""
    records = []
    for i, k in enumerate(kills):
        console = _Console(logs / f"{out.name}-{i}.log")
        delay = float(rng.uniform(0.0, k.max_delay_s))
        t0 = time.monotonic()
        proc = _start(cmd, console.path, cwd)
        seen = t0 if not k.stage and k.file is None else None
        while proc.poll() is None and time.monotonic() - t0 < ATTEMPT_TIMEOUT_S:
            if seen is None and k.seen(console):
                seen = time.monotonic()
            if seen is not None and time.monotonic() - seen >= delay:
                break
            time.sleep(0.005)
        status = console.status()
        _kill_group(proc)
        rc = _end(proc)
        console.read()
        assert rc in (0, -signal.SIGKILL), f"run {i} failed ({rc}):\n{console.text[-3000:]}"
        after = k.stage or (f"{k.file.relative_to(out)} written" if k.file is not None else "start")
        records.append({"after": after, "delay_s": round(delay, 3),
                        "at_s": round(time.monotonic() - t0, 2), "landed": rc == -signal.SIGKILL,
                        "status": status, "pid": proc.pid, "left": _left(out)})
    return records


def _left(out: Path) -> str:
    """What a killed run left in its output folder (for the report)."""
    if not out.exists():
        return "nothing"
    done = [p.parent for p in out.rglob("commit_success.txt")]  # Orbax: a finished save
    names = sorted([str(p.relative_to(out)) for p in out.rglob("*")
                    if p.suffix in (".json", ".npz", ".jsonl") and not any(d in p.parents for d in done)]
                   + [f"{d.relative_to(out)}/" for d in done if d.parent in (out, out / "checkpoints")])
    temps = sorted(p.name for p in out.rglob("*") if ".tmp" in p.name or "-tmp" in p.name)
    return ", ".join(names + [f"temporary {t}" for t in temps]) or "nothing"


def run_to_end(cmd: list[str], console: Path, cwd: Path) -> str:
    """Runs ``cmd`` to the end (exit status 0); returns its console output."""
    rc = _end(_start(cmd, console, cwd), timeout=ATTEMPT_TIMEOUT_S)
    text = console.read_text(errors="replace")
    assert rc == 0, f"{' '.join(cmd)} -> {rc}:\n{text[-3000:]}"
    return text


class _Background:
    """Steps (functions that start runs) done one after the other in a thread, beside the runs
    of the main thread: two processes at a time keep both cores busy."""

    def __init__(self, *steps: Callable):
        self.results, self.error = [], None
        self._done = threading.Event()
        self._count = len(steps)
        self._thread = threading.Thread(target=self._run, args=(steps,), daemon=True)
        self._thread.start()

    def _run(self, steps):
        try:
            for step in steps:
                self.results.append(step())
        except BaseException as e:  # noqa: BLE001 (re-raised by join())
            self.error = e
        finally:
            self._done.set()

    def join(self, i: int):
        """Step ``i``'s result, once it is done (its error, or an earlier step's)."""
        deadline = time.monotonic() + 10 * ATTEMPT_TIMEOUT_S
        while len(self.results) <= i and not self._done.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        if len(self.results) > i:
            return self.results[i]
        raise self.error or TimeoutError("background runs still going")


def report(job: str, records: list[dict]) -> int:
    """Prints the kills (``pytest -s``); returns how many landed on a live process."""
    landed = sum(r["landed"] for r in records)
    print(f"\n{job}: {landed}/{len(records)} kills landed")
    for r in records:
        what = "killed" if r["landed"] else "ended before the kill"
        print(f"  {what} at {r['at_s']:5.2f} s ({r['delay_s']:.2f} s after {r['after']!r}): {r['status']}\n"
              f"    left: {r['left']}")
    return landed


def _truncate(src: Path, dst: Path, fraction: float) -> None:
    """``dst``: the first ``fraction`` of ``src``'s bytes, as a kill mid-write would leave it."""
    data = src.read_bytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: int(len(data) * fraction)])


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _no_wall_time(x):
    """``x`` without the wall-time fields (:data:`TIME_KEYS`), recursively."""
    if isinstance(x, dict):
        return {k: _no_wall_time(v) for k, v in x.items() if k not in TIME_KEYS}
    if isinstance(x, list):
        return [_no_wall_time(v) for v in x]
    return x


def _python(module: str, *args) -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]


# ----------------------------------------------------------------------------------------------
# Planning a folder
# ----------------------------------------------------------------------------------------------

PLAN_ARGS = ["--hand", "parallel_jaw", "--steps", "5", "--starts", "2", "--grasps", "2", "--seed", "3",
             "--no-pictures"]


def test_plan_folder_killed_and_resumed_equals_an_uninterrupted_run(tmp_path):
    objs = tmp_path / "objs"
    (objs / "sub").mkdir(parents=True)
    trimesh.creation.box(extents=(0.05, 0.06, 0.08)).export(objs / "box.stl")
    trimesh.creation.cylinder(radius=0.03, height=0.1, sections=16).export(objs / "cyl.obj")
    trimesh.creation.icosphere(subdivisions=1, radius=0.04).export(objs / "sub" / "ball.stl")
    ref, out = tmp_path / "ref", tmp_path / "killed"
    reference = _Background(lambda: run_to_end(_python("jaxgrasp.plan", objs, "--out", ref, *PLAN_ARGS),
                                               tmp_path / "ref.log", tmp_path))

    cmd = _python("jaxgrasp.plan", objs, "--out", out, *PLAN_ARGS)
    kills = [Kill("", 1.5),  # starting Python, importing JAX
             Kill(r"optimizing", 3.0),  # compiling (or loading compiled code), optimizing, evaluating
             Kill(r"writing \S+\.json", 0.02)]  # at an object's file: mid-write or just after
    records = run_killed(cmd, kills, tmp_path, tmp_path, np.random.default_rng(SEED), out)
    landed = report("plan", records)
    reference.join(0)

    # What a kill mid-write leaves with a writer that is not atomic: a truncated plan file and
    # a partial temporary. The last run must plan that object again, not skip it.
    _truncate(ref / "sub" / "ball.json", out / "sub" / "ball.json", 0.6)
    _truncate(ref / "sub" / "ball.json", out / "sub" / "ball.json.tmp", 0.3)
    job = next(j for j in collect_jobs([str(objs)]) if j.name == "sub/ball")
    assert output_for(job, job.identity("m"), out)[1] == "changed"  # not "done"
    box_done = (out / "box.json").exists()
    console = run_to_end(cmd, tmp_path / "last.log", tmp_path)
    assert "sub/ball.json records this file with other content or units, or cannot be read" in console
    assert ("box: done before, skipped" in console) == box_done

    assert _files(out) == _files(ref) and not list(out.rglob("*.tmp"))
    for name in ("box", "cyl", "sub/ball"):
        a, b = (json.loads((d / f"{name}.json").read_text()) for d in (ref, out))
        assert a["grasps"] and len(a["grasps"]) == 2
        # Bit-exact: the same fixed-step computation (no time budget), and JSON keeps every
        # float64 digit. Only the wall-time fields differ.
        assert _no_wall_time(a) == _no_wall_time(b), name
    assert landed >= 2, records


# ----------------------------------------------------------------------------------------------
# Building a dataset
# ----------------------------------------------------------------------------------------------

DATA_ARGS = ["--hand", "parallel_jaw", "--grasps", "2", "--plan-starts", "4", "--plan-steps", "20", "--views", "1",
             "--size", "16", "--rotations", "2", "--shard-size", "2", "--test-fraction", "0.25", "--seed", "0"]
SEEDED = ("b_cyl", "c_ball", "d_box")  # objects whose ground truth is given (see _seed)


def _dataset_objects(folder: Path) -> None:
    folder.mkdir(parents=True)
    trimesh.creation.box(extents=(0.02, 0.03, 0.06)).export(folder / "a_box.stl")
    trimesh.creation.cylinder(radius=0.015, height=0.06, sections=12).export(folder / "b_cyl.obj")
    trimesh.creation.icosphere(subdivisions=1, radius=0.025).export(folder / "c_ball.stl")
    trimesh.creation.box(extents=(0.04, 0.03, 0.02)).export(folder / "d_box.stl")


def _seed(out: Path) -> None:
    """Ground truth for three of the four objects in the build's cache (``gt/``): a few planner
    steps find no valid parallel-jaw grasp (none in 60 steps either, measured), and planning
    until they do would cost minutes. The fourth, ``a_box``, is planned by the build (it finds
    none and is dropped: a path of its own), so that kills also land in planning."""
    rng = np.random.default_rng(0)
    for name in SEEDED:
        write_npz(str(out / "gt" / f"{name}.npz"), configs=rng.normal(scale=0.05, size=(2, 7)),
                  q1=rng.uniform(size=2), penetration_mm=np.zeros(2), num_starts=np.asarray(4))


def _train_cmd(data: Path, out: Path) -> list[str]:
    # 4 training samples, batch 2: 2 steps per epoch; 1 epoch of phase 1, 1 of phase 2.
    return _python("jaxgrasp.train", "--data", data, "--out", out, "--epochs1", "1", "--epochs2", "1", "--batch",
                   "2", "--val-samples", "1", "--seed", "4", "--no-eval", "--resume")


@pytest.fixture(scope="module")
def dataset_runs(request, tmp_path_factory):
    """The reference build, the killed builds, and the killed training runs, which learn from
    the reference build (beside the killed builds, in the background; the training test runs
    the training's reference beside them)."""
    tmp = tmp_path_factory.mktemp("dataset")
    objs, ref, out = tmp / "objs", tmp / "ref", tmp / "killed"
    _dataset_objects(objs)
    _seed(ref)
    _seed(out)
    steps = [lambda: run_to_end(_python("jaxgrasp.dataset", "build", "--objects", objs, "--out", ref, *DATA_ARGS),
                                tmp / "ref.log", tmp)]
    if any(item.originalname == "test_training_killed_and_resumed_equals_an_uninterrupted_run"
           for item in request.session.items):
        steps.append(lambda: _train_killed(ref, tmp))
    background = _Background(*steps)
    cmd = _python("jaxgrasp.dataset", "build", "--objects", objs, "--out", out, *DATA_ARGS)
    kills = [Kill("", 1.5), Kill(r"ground truth", 2.5),  # importing; planning a_box's ground truth
             Kill("", 0.3, file=out / "shards" / "train-000.npz")]  # among the shards' writes
    records = run_killed(cmd, kills, tmp, tmp, np.random.default_rng(SEED + 1), out)
    background.join(0)
    yield {"tmp": tmp, "ref": ref, "out": out, "cmd": cmd, "records": records, "background": background}
    _stop_all()  # (runs still going when a test failed early)


def test_dataset_build_killed_and_resumed_equals_an_uninterrupted_run(dataset_runs):
    tmp, ref, out, records = (dataset_runs[k] for k in ("tmp", "ref", "out", "records"))
    landed = report("dataset", records)
    # Partial files as a non-atomic writer killed mid-write would leave them: the ground truth
    # the build plans, a shard, and a killed writer's temporary. None may be read as whole.
    _truncate(ref / "gt" / "a_box.npz", out / "gt" / "a_box.npz", 0.5)
    _truncate(ref / "shards" / "train-000.npz", out / "shards" / "train-000.npz", 0.9)
    dead = records[-1]["pid"]  # reaped: not running
    _truncate(ref / "shards" / "train-000.npz", out / "shards" / f"train-000.tmp{dead}.npz", 0.5)
    assert _read_npz(str(out / "gt" / "a_box.npz")) is None
    console = run_to_end(dataset_runs["cmd"], tmp / "last.log", tmp)
    assert "a_box.npz cannot be read: computing it again" in console

    assert _files(out) == _files(ref)  # no temporary left, nothing missing
    for rel in _files(ref):
        a, b = ref / rel, out / rel
        if rel.endswith(".npz"):
            with np.load(a) as za, np.load(b) as zb:
                assert za.files == zb.files, rel
                for key in za.files:  # bit-exact: same planner steps, same renderer
                    np.testing.assert_array_equal(za[key], zb[key], err_msg=f"{rel}:{key}")
                    assert za[key].dtype == zb[key].dtype
        elif rel.endswith(".json"):
            assert json.loads(a.read_text()) == json.loads(b.read_text()), rel
        else:
            assert a.read_bytes() == b.read_bytes(), rel
    manifest = json.loads((ref / "manifest.json").read_text())
    assert [d["name"] for d in manifest["dropped"]] == ["a_box"] and len(manifest["objects"]) == 3
    assert landed >= 2, records


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


def _params(folder: Path) -> dict[str, np.ndarray]:
    """The parameters saved in ``folder``, as stored (no model needed to read them back)."""
    tree = ocp.StandardCheckpointer().restore(str(folder))
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(tree)}


def _log(path: Path) -> list[dict]:
    return [_no_wall_time(json.loads(line)) for line in path.read_text().splitlines()]


def _train_killed(data: Path, tmp: Path) -> list[dict]:
    """Training runs into ``tmp/train-killed``, killed, then one to the end; the kills' records."""
    out = tmp / "train-killed"
    cmd = _train_cmd(data, out)
    # An epoch's log line is written just before its checkpoint: the kills after it land in the
    # checkpoint's write (Orbax), or just after it (the next phase, the final parameters).
    kills = [Kill("", 1.5),
             Kill(r'"epoch": 1\b', 0.5, file=out / "log.jsonl"),
             Kill(r'"epoch": 2\b', 0.5, file=out / "log.jsonl")]
    records = run_killed(cmd, kills, tmp, tmp, np.random.default_rng(SEED + 2), out)
    # A kill mid-append of the log would leave a torn line; the resume drops it.
    with open(out / "log.jsonl", "a") as f:
        f.write('{"epoch": 9, "phase": 2, "tra')
    run_to_end(cmd, tmp / "train-last.log", tmp)
    return records


def test_training_killed_and_resumed_equals_an_uninterrupted_run(dataset_runs):
    tmp = dataset_runs["tmp"]
    ref, out = tmp / "train-ref", tmp / "train-killed"
    run_to_end(_train_cmd(dataset_runs["ref"], ref), tmp / "train-ref.log", tmp)
    records = dataset_runs["background"].join(1)  # _train_killed
    landed = report("train", records)

    # Bit-exact: the resumed run restores parameters, optimiser state and PRNG key exactly
    # (Orbax arrays) and redoes the epoch it was killed in with the same sample order.
    for folder in ("final", "phase1"):
        a, b = _params(ref / folder), _params(out / folder)
        assert a.keys() == b.keys() and len(a) > 10
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{folder} {k}")
            assert a[k].dtype == b[k].dtype == np.float32
    assert _log(ref / "log.jsonl") == _log(out / "log.jsonl")
    assert [(r["epoch"], r["phase"]) for r in _log(out / "log.jsonl")] == [(1, 1), (2, 2)]
    run_a, run_b = (json.loads((d / "run.json").read_text()) for d in (ref, out))
    run_a["train_config"].pop("out"), run_b["train_config"].pop("out")
    assert run_a == run_b
    assert C.manager(str(out / "checkpoints"), 2).all_steps() == C.manager(str(ref / "checkpoints"), 2).all_steps()
    leftovers = [p.name for p in out.rglob("*") if "tmp" in p.name]
    assert not leftovers, leftovers
    assert landed >= 2, records


# ----------------------------------------------------------------------------------------------
# Partial files
# ----------------------------------------------------------------------------------------------

# A writer killed in the middle of its write: the payload's last array pickles by SIGKILLing
# its own process, after np.savez has written the first array into the archive. The atomic
# writer module is loaded by path: importing the package would import JAX (seconds).
_KILLED_WRITER = """
import importlib.util, os, signal, sys
import numpy as np
spec = importlib.util.spec_from_file_location("atomic", sys.argv[1])
atomic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(atomic)

class KillWhilePickled:
    def __reduce__(self):
        sys.stdout.write("writing\\n"); sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

atomic.write_npz(sys.argv[2], first=np.arange(100_000, dtype=np.float64),
                 last=np.array([KillWhilePickled()], dtype=object))
"""


def test_a_writer_killed_mid_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "shards" / "train-000.npz"
    atomic_py = ROOT / "jaxgrasp" / "learning" / "atomic.py"
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(atomic_py), str(target)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL and proc.stdout == "writing\n", proc.stderr
    # The file is absent, not partial; what the killed writer wrote is in its temporary, which
    # no reader takes for the file (it is not a whole archive either).
    assert not target.exists()
    (tmp,) = target.parent.glob("train-000.tmp*.npz")
    assert tmp.stat().st_size > 0 and _read_npz(str(tmp)) is None
    # A temporary of a running writer is left alone; the next write removes the dead one's.
    live = target.parent / f"train-000.tmp{os.getppid()}.npz"
    live.write_bytes(b"in flight")
    write_npz(str(target), a=np.arange(3))
    assert not tmp.exists() and live.exists()
    np.testing.assert_array_equal(_read_npz(str(target))["a"], np.arange(3))


def test_a_resumed_training_log_keeps_one_line_per_finished_epoch(tmp_path):
    log = tmp_path / "log.jsonl"
    lines = [json.dumps({"epoch": e, "train_total": 1.0 / e}) + "\n" for e in (1, 2, 3)]
    # Epoch 3's line was written, then the run was killed before epoch 3's checkpoint: the
    # resume (from epoch 2) drops it, and the torn line a kill mid-append leaves.
    log.write_text("".join(lines) + '{"epoch": 4, "tr')
    _trim_log(str(log), 2)
    assert log.read_text() == "".join(lines[:2])
    _trim_log(str(tmp_path / "missing.jsonl"), 0)  # a run killed before its first epoch
    assert not (tmp_path / "missing.jsonl").exists()


def test_an_unfinished_checkpoint_is_never_the_latest(tmp_path):
    """Orbax writes a step into ``<step>.orbax-checkpoint-tmp`` and renames it once complete; a
    kill before the rename leaves that folder, which must not count as a step, and which the
    resumed run's save of the same step replaces."""
    state = {"params": {"w": jnp.arange(3.0)}, "opt_state": (jnp.zeros(2),), "key": jnp.zeros(2, jnp.uint32),
             "epoch": 1, "step_in_epoch": 0, "step": 2, "phase": 1, "sums": {"data": 0.5}}
    folder = tmp_path / "checkpoints"
    C.save(C.manager(str(folder), 2), state)
    partial = folder / "4.orbax-checkpoint-tmp"
    shutil.copytree(folder / "2", partial)
    for f in partial.rglob("commit_success.txt"):  # killed before the commit
        f.unlink()
    mgr = C.manager(str(folder), 2)
    assert mgr.all_steps() == [2]
    restored = C.restore(mgr, {**state, "params": {"w": jnp.zeros(3)}, "step": 0})
    assert restored["step"] == 2 and restored["sums"] == {"data": 0.5}
    np.testing.assert_array_equal(np.asarray(restored["params"]["w"]), np.arange(3.0))
    C.save(mgr, {**state, "step": 4, "epoch": 2})
    assert sorted(p.name for p in folder.iterdir()) == ["2", "4"]
