"""Loading, checking, repairing and padding objects."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import trimesh

from jaxgrasp.mesh import geometry
from jaxgrasp.mesh.objects import Object, load_object, make_object

OFFSET = np.array([0.3, -0.2, 0.1])


def offset_box():
    box = trimesh.creation.box([0.04, 0.06, 0.1])
    box.apply_translation(OFFSET)
    return box


@pytest.mark.parametrize("ext", ["obj", "stl", "ply", "off", "glb"])
def test_formats_load_in_input_frame(tmp_path, ext):
    box = offset_box()
    path = tmp_path / f"box.{ext}"
    box.export(path)
    obj, report = load_object(path, dtype=np.float64)
    assert report.num_faces == 12 and report.num_vertices == 8 and report.watertight
    assert report.num_bodies == 1 and report.euler_number == 2
    v = np.asarray(obj.vertices)[np.asarray(obj.vertex_mask)]
    np.testing.assert_allclose(np.sort(v, axis=0), np.sort(box.vertices, axis=0), atol=1e-6)
    np.testing.assert_allclose(np.asarray(obj.center_of_mass), OFFSET, atol=1e-6)
    np.testing.assert_allclose(float(obj.size), 0.5 * np.linalg.norm([0.04, 0.06, 0.1]), rtol=1e-6)
    if ext == "stl":  # three copies of every vertex
        assert any("merged duplicate vertices" in s for s in report.repairs)
    d, _ = geometry.signed_distance(obj, OFFSET)
    assert abs(float(d) + 0.02) < 1e-6  # centre: 2 cm inside


def test_unreadable_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_object(tmp_path / "missing.stl")
    empty = tmp_path / "empty.stl"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_object(empty)
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(os.urandom(300))
    with pytest.raises(ValueError, match="cannot read|no triangles"):
        load_object(garbage)
    no_faces = tmp_path / "points.obj"
    no_faces.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(ValueError, match="no triangles"):
        load_object(no_faces)


def test_invalid_arrays_raise_clear_errors():
    box = offset_box()
    v, f = np.array(box.vertices), np.array(box.faces)
    bad = v.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN/inf"):
        make_object(bad, f)
    with pytest.raises(ValueError, match=r"face indices"):
        make_object(v, np.where(f == 7, 8, f))
    with pytest.raises(ValueError, match="millimetres"):
        make_object(v * 1000, f)
    with pytest.raises(ValueError, match="pad_to"):
        make_object(v, f, pad_to=8)
    with pytest.raises(ValueError, match="empty"):
        make_object(np.zeros((0, 3)), np.zeros((0, 3), int))


def test_explicit_unit_scaling():
    box = offset_box()
    obj, report = make_object(box.vertices * 1000, box.faces, units="mm", dtype=np.float64)
    np.testing.assert_allclose(np.asarray(obj.center_of_mass), OFFSET, atol=1e-12)
    assert report.scale == 0.001 and any("scaled" in s for s in report.repairs)
    obj2, _ = make_object(box.vertices * 100, box.faces, scale=0.01, dtype=np.float64)
    np.testing.assert_allclose(np.asarray(obj2.corners), np.asarray(obj.corners), atol=1e-12)


def test_repairs_are_made_and_reported():
    ico = trimesh.creation.icosphere(2, radius=0.05)
    clean, _ = make_object(ico.vertices, ico.faces, dtype=np.float64, pad_to=512)
    v = np.concatenate([ico.vertices, ico.vertices[:3]])           # 3 duplicate vertices
    f = ico.faces.copy()
    f[::7] = f[::7, ::-1]                                          # inconsistent winding
    n = len(ico.vertices)
    extra = np.array([ico.faces[0],                                # duplicated face
                      [n, n + 1, n + 2], [n + 2, n + 1, n],        # back-to-back pair
                      [0, 0, 1],                                   # repeated vertex
                      [0, 1, 0]])
    v = np.concatenate([v, [0.5 * (v[0] + v[1])]])
    extra = np.concatenate([extra, [[0, len(v) - 1, 1]]])          # collinear corners
    obj, report = make_object(v, np.concatenate([f, extra]), dtype=np.float64, pad_to=512)
    text = str(report)
    for expected in ["duplicate vertices", "zero-area faces", "back-to-back", "inconsistent"]:
        assert expected in text, expected
    assert report.watertight and report.num_faces == len(ico.faces)
    assert report.num_vertices == len(ico.vertices)
    pts = np.random.default_rng(0).uniform(-0.08, 0.08, (200, 3))
    d, n_ = geometry.signed_distance(obj, pts)
    d0, n0 = geometry.signed_distance(clean, pts)
    np.testing.assert_allclose(np.asarray(d), np.asarray(d0), atol=1e-15)
    np.testing.assert_allclose(np.asarray(n_), np.asarray(n0), atol=1e-12)
    inverted, report = make_object(ico.vertices, ico.faces[:, ::-1], dtype=np.float64, pad_to=512)
    assert any("inside-out" in s for s in report.repairs)
    np.testing.assert_array_equal(np.asarray(inverted.faces), np.asarray(clean.faces))


def test_several_bodies_keep_or_largest():
    big = trimesh.creation.icosphere(2, radius=0.05)
    small = trimesh.creation.icosphere(1, radius=0.01)
    small.apply_translation([0.1, 0, 0])
    both = trimesh.util.concatenate([big, small])
    obj, report = make_object(both.vertices, both.faces, dtype=np.float64)
    assert report.num_bodies == 2 and any("2 separate bodies" in s for s in report.findings)
    d, _ = geometry.signed_distance(obj, np.array([0.1, 0.0, 0.0]))
    assert float(d) < -0.009  # inside the small body
    obj1, report1 = make_object(both.vertices, both.faces, components="largest", dtype=np.float64)
    assert report1.num_bodies == 1 and report1.num_faces == len(big.faces)
    d1, _ = geometry.signed_distance(obj1, np.array([0.1, 0.0, 0.0]))
    assert float(d1) > 0.04
    with pytest.raises(ValueError, match="components"):
        make_object(both.vertices, both.faces, components="merge")


def test_not_watertight_is_reported():
    ico = trimesh.creation.icosphere(2, radius=0.05)
    obj, report = make_object(ico.vertices, ico.faces[5:], dtype=np.float64)
    assert not report.watertight and not bool(obj.watertight)
    assert any("boundary edges" in s for s in report.findings)
    # Centre of mass of a surface that encloses no volume: the area-weighted centroid.
    tri = ico.vertices[ico.faces[5:]]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    np.testing.assert_allclose(np.asarray(obj.center_of_mass),
                               (area[:, None] * tri.mean(axis=1)).sum(0) / area.sum(), atol=1e-12)


def test_padding_shares_compiled_functions_and_is_never_closest():
    a = trimesh.creation.icosphere(2, radius=0.05)              # 320 faces
    b = trimesh.creation.capsule(0.05, 0.02, count=[16, 16])     # different face count
    b.apply_translation([0.5, 0, 0])                             # far from the padded rows
    obj_a, _ = make_object(a.vertices, a.faces, dtype=np.float64)
    obj_b, rep_b = make_object(b.vertices, b.faces, dtype=np.float64, pad_to=512)
    assert obj_a.faces.shape == (512, 3) and obj_a.face_mask.sum() == 320
    assert obj_b.corners.shape == (512, 3, 3) and obj_b.face_mask.sum() == rep_b.num_faces
    assert obj_a.faces.dtype == jnp.int32 and obj_a.corners.dtype == jnp.float64
    assert jax.tree.structure(obj_a) == jax.tree.structure(obj_b)  # nothing static
    pts = np.zeros((5, 3))
    jitted = geometry._signed_distance_padded
    geometry.signed_distance(obj_a, pts)  # compile for this padded shape
    before = jitted._cache_size()
    d_b, _ = geometry.signed_distance(obj_b, pts)
    assert jitted._cache_size() == before  # same padded shapes: no recompilation
    assert np.all(np.asarray(d_b) > 0.4)  # the padded (zero) rows at the origin are ignored
    np.testing.assert_allclose(np.asarray(geometry.winding_number(obj_b, pts)), 0, atol=1e-12)
    assert isinstance(obj_a.replace(size=obj_a.size * 2), Object)
    obj32, _ = make_object(a.vertices, a.faces)
    assert obj32.corners.dtype == jnp.float32  # default dtype
