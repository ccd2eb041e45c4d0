"""A corpus of bad inputs: every case ends, within a stated time, in a clear one-line error
(exception type and what to change) or in a repaired load whose repairs are reported.

Meshes are generated into a temporary folder (nothing binary is committed); the hand files are
``tests/data/bad/`` plus a few generated ones. The loader (``load_object``, the command line's
``load_job``, ``load_hand``) is tested on every case; the command line's per-object error path
runs once on the whole folder of failing meshes (no planning: each fails at loading). Planning
runs end to end in ``test_cli_outputs.py``. The 2-million-triangle mesh is not part of the
test (its load takes ~17 s here); see the module's ``_torus`` for how it was measured.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

from jaxgrasp.cli import plan as cli_plan
from jaxgrasp.cli.jobs import Job
from jaxgrasp.cli.plan import load_job
from jaxgrasp.cli.plan import main as plan_main
from jaxgrasp.hand.mjcf import HandLoadError
from jaxgrasp.hand.model import load_hand
from jaxgrasp.mesh.objects import load_object

DATA = Path(__file__).parent / "data"
BOX = trimesh.creation.box(extents=(0.05, 0.06, 0.08))


@dataclasses.dataclass(frozen=True)
class Case:
    """A bad input and what must happen: ``error`` (an exception type) with ``match`` in its
    message, or ``error=None``: it loads, and ``match`` is in the report (findings + repairs)."""

    name: str
    file: str
    error: type | None
    match: str
    units: str = "m"
    seconds: float = 5.0


def _obj_text(v, f) -> str:
    return "".join(f"v {a!r} {b!r} {c!r}\n" for a, b, c in np.asarray(v, float).tolist()) + \
        "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in np.asarray(f))


def _off_text(v, f) -> str:
    return f"OFF\n{len(v)} {len(f)} 0\n" + "".join(f"{a!r} {b!r} {c!r}\n" for a, b, c in np.asarray(v, float).tolist()) \
        + "".join(f"3 {a} {b} {c}\n" for a, b, c in np.asarray(f).tolist())


def _torus(n: int, m: int, R: float = 0.05, r: float = 0.02):
    """A closed torus of 2 n m triangles (n = m = 1000: the 2-million-triangle case)."""
    u, w = np.meshgrid(2 * np.pi * np.arange(n) / n, 2 * np.pi * np.arange(m) / m, indexing="ij")
    v = np.stack([(R + r * np.cos(w)) * np.cos(u), (R + r * np.cos(w)) * np.sin(u), r * np.sin(w)], -1)
    i, j = np.meshgrid(np.arange(n), np.arange(m), indexing="ij")
    a, b = i * m + j, ((i + 1) % n) * m + j
    c, d = ((i + 1) % n) * m + (j + 1) % m, i * m + (j + 1) % m
    f = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return v.reshape(-1, 3), f


def _moebius(n: int = 24):
    """A Moebius strip with some thickness in no direction: not orientable."""
    t = 2 * np.pi * np.arange(n) / n
    rows = [np.stack([(0.05 + s * np.cos(t / 2)) * np.cos(t), (0.05 + s * np.cos(t / 2)) * np.sin(t),
                      s * np.sin(t / 2)], -1) for s in (-0.02, 0.02)]
    v = np.concatenate(rows)
    f = []
    for k in range(n):
        k1 = (k + 1) % n
        a, b, c, d = k, k1, n + k1, n + k
        if k == n - 1:  # the half twist: the strip's sides swap
            b, c = n + k1, k1
        f += [[a, b, c], [a, c, d]]
    return v, np.array(f)


def _mesh_cases(folder: Path | None) -> list[Case]:
    """Writes the mesh files of the corpus into ``folder`` (None: nothing); returns the cases."""
    rng = np.random.default_rng(0)
    cases: list[Case] = []

    def write(name, data, error, match, **kw):
        cases.append(Case(name.rsplit(".", 1)[0], name, error, match, **kw))
        if folder is None:
            return
        p = folder / name
        data = data() if callable(data) else data
        if isinstance(data, (trimesh.Trimesh, trimesh.PointCloud)):
            data.export(p)
        elif isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)

    def box_at(offset=(0, 0, 0), extents=(0.05, 0.06, 0.08)):
        b = trimesh.creation.box(extents=extents)
        b.apply_translation(offset)
        return b

    def sphere(radius, offset=(0, 0, 0)):
        s = trimesh.creation.icosphere(2, radius=radius)
        s.apply_translation(offset)
        return s

    v, f = BOX.vertices.copy(), BOX.faces.copy()
    write("empty.stl", b"", ValueError, "empty")
    write("text.obj", "this is not a mesh\n", ValueError, "no triangles")
    write("text.stl", "hello, not an STL file either\n", ValueError, "no triangles")
    write("junk.stl", rng.bytes(5000), ValueError, "no triangles|cannot read")
    write("junk.ply", rng.bytes(5000), ValueError, "cannot read")
    write("junk.glb", rng.bytes(5000), ValueError, "cannot read")
    nan, inf = v.copy(), v.copy()
    nan[0, 0], inf[3, 2] = np.nan, np.inf
    write("nan.obj", _obj_text(nan, f), ValueError, "NaN/inf")
    write("inf.obj", _obj_text(inf, f), ValueError, "NaN/inf")
    write("single_triangle.obj", "v 0 0 0\nv 0.05 0 0\nv 0 0.05 0\nf 1 2 3\n", ValueError, "flat")
    write("flat_square.obj", _obj_text([[0, 0, 0], [0.05, 0, 0], [0, 0.05, 0], [0.05, 0.05, 0]],
                                       [[0, 1, 2], [1, 3, 2]]), ValueError, "flat")
    write("all_degenerate.obj", "v 0 0 0\nv 0.05 0 0\nv 0.1 0 0\nv 0 0 0.01\nf 1 2 3\nf 1 1 4\n",
          ValueError, "zero area")
    write("face_index_out_of_range.obj", "v 0 0 0\nv 0.05 0 0\nv 0 0.05 0\nf 1 2 9\n", ValueError, "cannot read")
    write("point_cloud.ply", trimesh.PointCloud(rng.random((100, 3)) * 0.05), ValueError, "no triangles")
    write("part.step", "ISO-10303-21;\nHEADER;\nENDSEC;\nEND-ISO-10303-21;\n", ValueError, "unsupported format")
    write("scene.dae", "<COLLADA></COLLADA>\n", ValueError, "unsupported format")
    write("tiny_1mm.stl", sphere(0.0005), ValueError, "too small")
    write("huge_10m.stl", sphere(5.0), ValueError, "too large")
    write("metres_read_as_mm.stl", sphere(0.04), ValueError, "--units m", units="mm")
    write("millimetres.stl", sphere(40.0), ValueError, "--units mm")
    write("centimetres.stl", sphere(4.0), ValueError, "--units cm")
    write("millimetres_ok.stl", sphere(40.0), None, "scaled coordinates by 0.001", units="mm")
    write("centimetres_ok.stl", sphere(4.0), None, "scaled coordinates by 0.01", units="cm")
    write("duplicate_faces.stl", trimesh.Trimesh(v, np.vstack([f, f]), process=False), None,
          "dropped 12 duplicated")
    write("inverted_normals.obj", _obj_text(v, f[:, ::-1]), None, "flipped 1 inside-out")
    mixed = f.copy()
    mixed[1::3] = mixed[1::3, ::-1]
    write("mixed_winding.obj", _obj_text(v, mixed), None, "flipped 4 faces")
    write("open_box.obj", _obj_text(v, f[:-2]), None, "not watertight: 4 boundary edges")
    two = trimesh.util.concatenate([box_at(), box_at((0.05, 0.06, 0))])  # share one edge
    two.merge_vertices()
    write("non_manifold_edge.obj", two, None, "1 non-manifold edges")
    write("moebius.obj", _obj_text(*_moebius()), None, "not orientable")
    write("two_bodies.obj", trimesh.util.concatenate([box_at(), box_at((0.2, 0, 0))]), None, "2 separate bodies")
    off = np.vstack([v, [[1, 1, 1]]])  # OFF: trimesh keeps unreferenced vertices (OBJ drops them)
    write("unused_vertices.off", _off_text(off, f), None, "dropped 1 unreferenced")
    write("far_1km.stl", sphere(0.04, (1000.0, 0, 0)), None, "moved 1000 m to the origin")
    write("large_200k.ply", lambda: trimesh.Trimesh(*_torus(400, 250), process=False), None, "",
          seconds=15.0)
    return cases


@pytest.fixture(scope="module")
def mesh_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_meshes")
    return folder, {c.name: c for c in _mesh_cases(folder)}


MESH_CASES = [c.name for c in _mesh_cases(None)]


def _one_line(msg: str) -> None:
    assert "\n" not in msg and "Traceback" not in msg, msg


@pytest.mark.parametrize("name", MESH_CASES)
def test_mesh_case_ends_in_a_clear_error_or_a_reported_repair(mesh_corpus, name):
    folder, cases = mesh_corpus
    case = cases[name]
    job = Job(name=case.name, source=str(folder / case.file), mesh=str(folder / case.file),
              path=folder / case.file)
    t0 = time.perf_counter()
    if case.error is not None:
        with pytest.raises(case.error, match=case.match) as info:
            load_job(job, case.units)
        _one_line(str(info.value))
    else:
        obj, report, shift = load_job(job, case.units)
        text = "; ".join(report.findings + report.repairs)
        assert case.match in text, text
        assert np.isfinite(np.asarray(obj.vertices)).all() and np.isfinite(float(obj.size))
        if name == "far_1km":  # planned at the origin, moved back afterwards
            np.testing.assert_allclose(shift, [-1000.0, 0, 0], atol=1e-3)
            assert float(np.abs(np.asarray(obj.center_of_mass)).max()) < 1e-3
        else:
            assert shift is None
    assert time.perf_counter() - t0 < case.seconds


def test_the_library_loader_agrees_on_errors(mesh_corpus):
    """``load_object`` itself (not only the command line's wrapper) gives the same errors."""
    folder, cases = mesh_corpus
    for case in cases.values():
        if case.error is None:
            continue
        with pytest.raises(case.error, match=case.match):
            load_object(folder / case.file, units=case.units)


def test_cli_reports_every_failing_file_in_one_line_and_exits_non_zero(mesh_corpus, tmp_path, capsys):
    folder, cases = mesh_corpus
    failing = tmp_path / "failing"
    failing.mkdir()
    for case in cases.values():
        if case.error is not None and case.units == "m" and case.file.endswith((".obj", ".stl", ".ply", ".glb")):
            (failing / case.file).write_bytes((folder / case.file).read_bytes())
    explicit = [str(folder / cases[n].file) for n in ("part", "scene")]  # formats a folder search skips
    names = sorted([p.stem for p in failing.iterdir()] + ["part", "scene"])
    out = tmp_path / "out"
    assert plan_main([str(failing), *explicit, "--out", str(out), "--no-pictures", "--steps", "1",
                      "--starts", "1"]) == 1
    text = capsys.readouterr()
    console = text.out + text.err
    assert "Traceback" not in console
    failed_lines = [line for line in console.replace("\r", "\n").splitlines() if ": FAILED: " in line]
    assert sorted(line.split(":")[0] for line in failed_lines) == names
    table = text.out
    assert f"{len(names)} objects failed" in table
    log = (out / "errors.log").read_text()
    assert all(f"{n} (" in log for n in names)
    assert not list(out.rglob("*.json"))


# ------------------------------------------------------------------------------------------------
# Hands
# ------------------------------------------------------------------------------------------------

ONE_FINGER = """<mujoco model="one_finger">
  <compiler angle="radian" autolimits="true"/>
  <worldbody>
    <body name="palm">
      <geom type="box" size="0.04 0.01 0.05" pos="0 0 0.05"/>
      <body name="proximal" pos="0 0 0.1">
        <joint name="j1" axis="1 0 0" range="0 1.5"/>
        <geom type="capsule" size="0.009" fromto="0 0 0.005 0 0 0.04"/>
        <body name="distal" pos="0 0 0.045">
          <joint name="j2" axis="1 0 0" range="0 1.5"/>
          <geom type="capsule" size="0.009" fromto="0 0 0.005 0 0 0.03"/>
        </body>
      </body>
    </body>
  </worldbody>
  {actuators}
</mujoco>
"""


def _write_hands(folder: Path) -> None:
    """The generated hand files of the corpus."""
    (folder / "truncated.xml").write_text('<mujoco model="x"><worldbody><body name="palm"><geom size=".01"/>')
    (folder / "one_finger.xml").write_text(ONE_FINGER.format(
        actuators='<actuator><position joint="j1"/><position joint="j2"/></actuator>'))
    (folder / "no_actuators.xml").write_text(ONE_FINGER.format(actuators=""))
    inertial = '<inertial pos="0 0 0" mass="0.01" diaginertia="1e-6 1e-6 1e-6"/>'
    no_geoms = "\n".join(inertial if "<geom " in line else line for line in ONE_FINGER.split("\n"))
    (folder / "no_geoms.xml").write_text(no_geoms.format(actuators=""))
    (folder / "visual_only.xml").write_text(
        ONE_FINGER.format(actuators="").replace('<geom ', '<geom contype="0" conaffinity="0" '))
    hand_body = ONE_FINGER.split("<worldbody>")[1].split("</worldbody>")[0]
    (folder / "two_jointed_roots.xml").write_text(ONE_FINGER.format(actuators="").replace(
        "</worldbody>", hand_body.replace('name="', 'name="second_') + "</worldbody>"))
    two = folder / "two_hands"
    two.mkdir()
    (two / "a.xml").write_text(ONE_FINGER.format(actuators=""))
    (two / "b.xml").write_text(ONE_FINGER.format(actuators=""))
    (folder / "missing_mesh.urdf").write_text(
        '<robot name="r"><link name="palm"><collision><geometry><mesh filename="meshes/nope.stl"/>'
        '</geometry></collision></link></robot>')


def _hand_cases(folder: Path) -> list[tuple[str, str, type | None, str]]:
    """(case, hand argument, expected error or None, message pattern); generated files in ``folder``."""
    bad = DATA / "bad"
    return [
        ("not_xml", str(bad / "not_xml.xml"), HandLoadError, "not an MJCF or URDF"),
        ("truncated_xml", str(folder / "truncated.xml"), HandLoadError, "MuJoCo could not compile"),
        ("missing_mesh", str(bad / "missing_mesh.xml"), HandLoadError, "references is missing.*does_not_exist"),
        ("missing_mesh_urdf", str(folder / "missing_mesh.urdf"), HandLoadError, "nope.stl' not found"),
        ("ball_joint", str(bad / "ball_joint.xml"), HandLoadError, "ball_joint.xml: ball joint .* three hinges"),
        ("free_joint_inside", str(bad / "free_inside.xml"), HandLoadError, "free joint"),
        ("free_joint_on_root", str(bad / "free_root.xml"), None, ""),
        ("not_a_hand", str(bad / "not_a_hand.xml"), HandLoadError, "not a hand"),
        ("hand_and_free_object", str(bad / "two_roots.xml"), None, ""),  # the jointed body is the hand
        ("no_actuators", str(folder / "no_actuators.xml"), None, ""),
        ("one_finger", str(folder / "one_finger.xml"), None, ""),
        ("no_geometry", str(folder / "no_geoms.xml"), HandLoadError,
         "no_geoms.xml: the hand has no collision geometry"),
        ("visual_geometry_only", str(folder / "visual_only.xml"), None, ""),  # used as collision geometry
        ("two_jointed_roots", str(folder / "two_jointed_roots.xml"), HandLoadError, "pass root=NAME"),
        ("folder_with_two_hands", str(folder / "two_hands"), HandLoadError, "folder with 2 MJCF/URDF files"),
        ("unknown_name", "shadw", HandLoadError, "not a bundled hand .*shadow"),
    ]


@pytest.fixture(scope="module")
def hand_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_hands")
    _write_hands(folder)
    return {c[0]: c for c in _hand_cases(folder)}


@pytest.mark.parametrize("name", [c[0] for c in _hand_cases(Path("generated"))])
def test_hand_case_ends_in_a_clear_error_or_loads(hand_corpus, name):
    _, arg, error, pattern = hand_corpus[name]
    t0 = time.perf_counter()
    if error is None:
        hand = load_hand(arg, num_samples=256, cache=False)
        assert hand.num_contacts > 0 and hand.num_independent >= 1
        assert np.isfinite(np.asarray(hand.contact_pos)).all()
    else:
        with pytest.raises(error, match=pattern) as info:
            load_hand(arg, num_samples=256, cache=False)
        _one_line(str(info.value))
    assert time.perf_counter() - t0 < 10.0


def test_cli_bad_hand_is_one_line_and_writes_nothing(mesh_corpus, tmp_path, capsys):
    folder, cases = mesh_corpus
    out = tmp_path / "out"
    status = plan_main([str(folder / cases["open_box"].file), "--hand", str(DATA / "bad" / "ball_joint.xml"),
                        "--out", str(out), "--no-pictures"])
    text = capsys.readouterr()
    assert status == 2 and not out.exists()
    assert "Traceback" not in text.out + text.err
    lines = [line for line in text.err.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "HandLoadError" in lines[0] and "three hinges" in lines[0]
    status = plan_main([str(tmp_path / "no_such_folder"), "--out", str(out)])
    assert status == 2 and "does not exist" in capsys.readouterr().err and not out.exists()


def test_plan_files_never_hold_nan():
    """The writer refuses non-finite values (a bug would fail the object, never write NaN)."""
    with pytest.raises(ValueError, match="non-finite value at /grasps/0/metrics/q1"):
        cli_plan._to_json({"grasps": [{"metrics": {"q1": float("nan")}}]})
    assert json.loads(cli_plan._to_json({"a": [1.0, None]})) == {"a": [1.0, None]}
