"""Target objects: load, check and repair triangle meshes; the padded object pytree.

Host phase (NumPy): :func:`load_object` reads a mesh file with trimesh, :func:`make_object`
takes arrays. Both check the mesh, repair what can be repaired without changing the solid
(:mod:`jaxgrasp.mesh.repair`), precompute the per-face tables the distance kernels need, and
convert to JAX arrays once.
Each returns ``(Object, LoadReport)``: the report (what was found, what was repaired) stays on
the host, so that it never becomes part of the pytree structure (which would recompile every
jitted function per object).

Frames: ``Object.vertices``/``faces`` are in the file's frame (after the explicit unit scaling).
``center_of_mass`` and ``size`` are leaves, so a planner can work centred (the paper assumes the
centre of mass at the origin: ``points_object = points_centred + obj.center_of_mass``) and still
report results in the input frame.

Padding: faces are padded to a bucket (next power of two, at least 64, or ``pad_to=``) and
vertices to the same number of rows (or their own bucket if larger); ``face_mask`` and
``vertex_mask`` mark the real rows (real vertices come first, in their order of first
occurrence in the input). Padded faces are never closest (the kernels mask them to +inf
distance) and add nothing to winding numbers.
"""

from __future__ import annotations

import dataclasses
import os

import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxgrasp.mesh.repair import (
    drop_bad_faces,
    edge_stats,
    face_areas,
    merge_vertices,
    orient,
    unique_rows,
)

# Bounding-box extents (largest side, in metres, after scaling) accepted without
# `check_units=False`: graspable objects are well below 2 m (CAD/scan exports in millimetres are
# far above it) and above 5 mm (a file in metres read as millimetres is far below it).
MAX_EXTENT_M = 2.0
MIN_EXTENT_M = 0.005
# Meshes centred farther than this from the origin [m] are moved to it when asked
# (``make_object(recenter=True)``): float32 coordinates at distance r resolve r * 2^-23 (0.12 mm
# at 1 km), and the distance query's rounding bound grows with r until nearly every query point
# takes the exact host path.
FAR_M = 10.0
_UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001}
_UNIT_NAMES = {"m": "metres", "cm": "centimetres", "mm": "millimetres"}
# A mesh thinner than this fraction of its extent along its thinnest axis is flat (a sheet).
FLAT_RATIO = 1e-6
# File formats load_object reads (trimesh without optional dependencies).
MESH_FORMATS = (".obj", ".stl", ".ply", ".off", ".glb", ".gltf")


@struct.dataclass
class Object:
    """A rigid target object: a padded triangle mesh with the tables the distance kernels need.

    All leaves are arrays but ``watertight`` (static: it picks the sign test), so objects with the
    same padded sizes and watertightness share compiled functions. Per-face tables are indexed by face; ``k`` below is the corner/edge index, edge
    ``k`` runs from corner ``k`` to corner ``(k + 1) % 3``.

    Attributes:
      vertices: (Vmax, 3) vertex positions in the input frame (padded rows are zero).
      vertex_mask: (Vmax,) bool, real vertices.
      faces: (Fmax, 3) int32 vertex indices, counter-clockwise seen from outside (padded: 0).
      face_mask: (Fmax,) bool, real faces.
      corners: (Fmax, 3, 3) triangle corners ``vertices[faces]``.
      normals: (Fmax, 3) unit outward face normals.
      columns: the per-face tables of the distance kernels, one (Fmax,) array per scalar
        component, named ``f"{table}{i}"`` with ``i`` the row-major index into the table's
        per-face shape. Tables: ``corners`` (3, 3); ``normals`` (3,); ``edges`` (3, 3), edge
        ``k`` = corner ``k + 1`` - corner ``k``; ``edge_inv_len2`` (3,), 1 / |edge|^2;
        ``edge_inward`` (3, 3), unit in-plane edge normals pointing into the triangle;
        ``edge_pseudonormals`` (3, 3), unit mean of the normals of the faces on edge ``k``;
        ``vertex_pseudonormals`` (3, 3), unit angle-weighted pseudonormal of corner ``k``
        (Baerentzen & Aanaes 2005). Separate arrays ("structure of arrays") are separate jit
        arguments, which the fused (points x faces) loops read fastest.
      watertight: static bool. True: closed, edge-manifold, consistently oriented; the sign of the
        distance uses pseudonormals. False: the sign uses the generalized winding number.
      center_of_mass: (3,) centre of mass (uniform density; the surface centroid if the mesh does
        not enclose a volume).
      size: () characteristic size: the radius of the smallest sphere centred at the centre of
        mass that contains every vertex.
      coord_bound: () largest absolute vertex coordinate (scales floating-point error bounds).
    """

    vertices: jnp.ndarray
    vertex_mask: jnp.ndarray
    faces: jnp.ndarray
    face_mask: jnp.ndarray
    corners: jnp.ndarray
    normals: jnp.ndarray
    columns: dict[str, jnp.ndarray]
    watertight: bool = struct.field(pytree_node=False)
    center_of_mass: jnp.ndarray
    size: jnp.ndarray
    coord_bound: jnp.ndarray

    @property
    def num_faces(self) -> jnp.ndarray:
        """Number of real (unpadded) faces."""
        return jnp.sum(self.face_mask)


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What the loader found in a mesh and what it repaired (host-side, not a pytree).

    Attributes:
      source: file path or "arrays".
      findings: problems found, one sentence each.
      repairs: repairs made, one sentence each.
      num_vertices, num_faces: counts after repair (before padding).
      num_bodies: face-connected components after repair.
      watertight: whether the repaired mesh is closed and consistently oriented.
      scale: factor applied to the file's coordinates.
      euler_number: V - E + F after repair (2 per sphere-like body, lower with tunnels).
      offset: None, or the (3,) vector [m] added to the coordinates to bring an object far from
        the origin near it (``make_object(..., recenter=True)``, see :data:`FAR_M`).
    """

    source: str
    findings: tuple[str, ...]
    repairs: tuple[str, ...]
    num_vertices: int
    num_faces: int
    num_bodies: int
    watertight: bool
    scale: float
    euler_number: int
    offset: tuple[float, float, float] | None = None

    def __str__(self) -> str:
        lines = [f"{self.source}: {self.num_faces} faces, {self.num_vertices} vertices, "
                 f"{self.num_bodies} body(ies), watertight={self.watertight}, "
                 f"Euler number {self.euler_number}, scale={self.scale}"]
        lines += [f"  found: {s}" for s in self.findings]
        lines += [f"  repaired: {s}" for s in self.repairs]
        return "\n".join(lines)


def pow2_bucket(n: int, minimum: int = 64) -> int:
    """Next power of two >= max(n, minimum): similar meshes share compiled shapes."""
    return 1 << int(np.ceil(np.log2(max(n, minimum))))


def load_object(path: str | os.PathLike, *, units: str = "m", scale: float | None = None,
                **kwargs) -> tuple[Object, LoadReport]:
    """Loads an OBJ/STL/PLY/OFF/GLB mesh file, checks and repairs it (see :func:`make_object`).

    Args:
      path: mesh file; scenes (GLB) are flattened with their transforms.
      units: unit of the file's coordinates: "m", "cm" or "mm".
      scale: explicit factor to metres; overrides ``units``.
      **kwargs: passed to :func:`make_object` (``pad_to``, ``components``, ``dtype``, ...).

    Returns:
      (object, report).

    Raises:
      FileNotFoundError: no such file.
      ValueError: the file is empty or unreadable, or the mesh cannot be used (see make_object).
    """
    import trimesh  # host-only dependency, imported lazily

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"mesh file not found: {path!r}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in MESH_FORMATS:
        raise ValueError(f"mesh file {path!r}: unsupported format {suffix or '(no suffix)'!r}; "
                         "convert it to OBJ, STL, PLY, OFF or GLB")
    if os.path.getsize(path) == 0:
        raise ValueError(f"mesh file {path!r} is empty (0 bytes); export the mesh again")
    try:
        # process=False: no silent merging/cleaning by trimesh; every repair is ours and reported.
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as err:  # trimesh raises many exception types for bad files
        raise ValueError(f"cannot read mesh file {path!r}: {type(err).__name__}: {err}. "
                         "Check the file format (OBJ, STL, PLY, OFF, GLB).") from err
    vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float64)
    faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))), dtype=np.int64)
    if len(vertices) == 0 or len(faces) == 0:
        raise ValueError(f"mesh file {path!r} contains no triangles "
                         f"({len(vertices)} vertices, {len(faces)} faces); it is not a triangle "
                         "mesh (text, points only, or a damaged file): export the surface again")
    return make_object(vertices, faces, units=units, scale=scale, source=path, **kwargs)


def make_object(vertices, faces, *, units: str = "m", scale: float | None = None,
                components: str = "keep", pad_to: int | None = None,
                pad_vertices_to: int | None = None, dtype=np.float32,
                check_units: bool = True, source: str = "arrays",
                recenter: bool = False) -> tuple[Object, LoadReport]:
    """Checks, repairs and packs a triangle mesh given as arrays.

    Checks (ValueError when not repairable): empty mesh, NaN/inf vertices, face indices out of
    range, no face of non-zero area, and, unless ``check_units=False``, a size that looks like
    another unit (largest extent over 2 m or under 5 mm; pass ``units``/``scale``) or a flat
    mesh (all vertices in one plane: a sheet without thickness). Safe repairs, each reported: merge exactly coincident vertices, drop
    degenerate faces (repeated index or collinear corners), drop duplicated faces and
    back-to-back face pairs (zero-volume sheets), drop unreferenced vertices, make the winding
    consistent per body, orient closed bodies outward, and keep or drop extra bodies.

    Args:
      vertices: (V, 3) float array.
      faces: (F, 3) int array.
      units: unit of the coordinates: "m", "cm" or "mm".
      scale: explicit factor to metres; overrides ``units``.
      components: "keep" all bodies (the distance is to their union) or keep the "largest".
      pad_to: number of face rows (>= faces after repair); default next power of two >= 64.
      pad_vertices_to: number of vertex rows; default ``pad_to`` (or the next power of two
        above the vertex count if that is larger).
      dtype: float dtype of the arrays (float32 or float64).
      check_units: raise when the size looks like another unit or the mesh is flat (see above).
      source: name used in messages and the report.
      recenter: move a mesh whose bounding-box centre lies farther than :data:`FAR_M` from the
        origin to it (by a vector rounded to mm, in float64 before rounding to ``dtype``); the
        vector is the report's ``offset`` and the move one of its repairs. Who plans on the
        object moves results back by it (the planner does, through the prepared object).

    Returns:
      (object, report).
    """
    findings: list[str] = []
    repairs: list[str] = []
    if components not in ("keep", "largest"):
        raise ValueError(f"{source}: components must be 'keep' or 'largest', "
                         f"got {components!r}")
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"{source}: expected vertices (V, 3) and faces (F, 3), got "
                         f"{v.shape} and {f.shape}")
    if len(v) == 0 or len(f) == 0:
        raise ValueError(f"{source}: empty mesh ({len(v)} vertices, {len(f)} faces)")
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"{source}: faces must be integer indices, got dtype {f.dtype}")
    f = f.astype(np.int64)
    bad = ~np.isfinite(v).all(axis=1)
    if bad.any():
        raise ValueError(f"{source}: {int(bad.sum())} vertices have NaN/inf coordinates (first "
                         f"index {int(np.argmax(bad))}); fix or remove them in the source file")
    if f.min() < 0 or f.max() >= len(v):
        raise ValueError(f"{source}: face indices must lie in [0, {len(v) - 1}], found "
                         f"[{f.min()}, {f.max()}]")
    if scale is None:
        if units not in _UNIT_SCALES:
            raise ValueError(f"{source}: units must be one of {sorted(_UNIT_SCALES)}, "
                             f"got {units!r}")
        scale = _UNIT_SCALES[units]
    scale = float(scale)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"{source}: scale must be a positive finite number, got {scale}")
    if scale != 1.0:
        v = v * scale
        repairs.append(f"scaled coordinates by {scale} to metres")
    extent = float(np.ptp(v[_used(f, len(v))], axis=0).max())
    if check_units and not MIN_EXTENT_M <= extent <= MAX_EXTENT_M:
        raise ValueError(_unit_message(source, extent, scale))

    offset = None
    if recenter:
        used = v[_used(f, len(v))]
        centre = 0.5 * (used.min(axis=0) + used.max(axis=0))
        if np.abs(centre).max() > FAR_M:
            offset = -np.round(centre, 3)
            v = v + offset
            repairs.append(f"moved {np.linalg.norm(offset):.4g} m to the origin for planning (float32 "
                           f"coordinates that far resolve only {np.abs(centre).max() * 2.0 ** -23:.1g} m); "
                           "poses and contacts are moved back to the file's frame")

    # The object's geometry is its vertices in `dtype`: round first, so that merging, the
    # degeneracy tests and every derived table see exactly the stored coordinates.
    v = v.astype(dtype).astype(np.float64)
    v, f = merge_vertices(v, f, findings, repairs)
    proper = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])
    counts, consistent = edge_stats(f[proper])
    if not ((counts == 2).all() and consistent):
        findings.append(f"not watertight as given: {int((counts == 1).sum())} boundary edges, "
                        f"{int((counts > 2).sum())} non-manifold edges"
                        + ("" if consistent else ", inconsistent winding"))
    f = drop_bad_faces(v, f, findings, repairs)
    if len(f) == 0:
        raise ValueError(f"{source}: every face has zero area (repeated or collinear corners), so "
                         "there is no surface to grasp; export the mesh again with its triangles")
    if check_units:
        _check_not_flat(source, v[_used(f, len(v))])
    f, labels = orient(v, f, findings, repairs)
    n_bodies = int(labels.max()) + 1
    if n_bodies > 1:
        findings.append(f"{n_bodies} separate bodies (face-connected components)")
        if components == "largest":
            areas = np.bincount(labels, weights=face_areas(v, f), minlength=n_bodies)
            keep = labels == int(np.argmax(areas))
            repairs.append(f"kept the largest body ({int(keep.sum())} faces), dropped "
                           f"{n_bodies - 1} other(s) ({int((~keep).sum())} faces)")
            f = f[keep]
            n_bodies = 1
    used = np.nonzero(_used(f, len(v)))[0]
    if len(used) < len(v):
        repairs.append(f"dropped {len(v) - len(used)} unreferenced vertices")
        remap = np.full(len(v), -1, np.int64)
        remap[used] = np.arange(len(used))
        v, f = v[used], remap[f]

    counts, consistent = edge_stats(f)
    watertight = bool((counts == 2).all() and consistent)
    if not watertight:
        findings.append(f"not watertight: {int((counts == 1).sum())} boundary edges, "
                        f"{int((counts > 2).sum())} non-manifold edges; the sign of the distance "
                        "uses the generalized winding number")
    euler = len(v) - len(counts) + len(f)
    if pad_to is None:
        pad_to = pow2_bucket(len(f))
    if pad_to < len(f):
        raise ValueError(f"{source}: pad_to={pad_to} is smaller than the {len(f)} faces")
    if pad_vertices_to is None:
        # Same rows as the faces when they suffice (closed meshes have V ~ F / 2), so that the
        # vertex array never splits otherwise equal shapes.
        pad_vertices_to = pad_to if len(v) <= pad_to else pow2_bucket(len(v))
    if pad_vertices_to < len(v):
        raise ValueError(f"{source}: pad_vertices_to={pad_vertices_to} < {len(v)} vertices")
    obj = _pack(v, f, watertight, pad_to, pad_vertices_to, np.dtype(dtype))
    report = LoadReport(source=source, findings=tuple(findings), repairs=tuple(repairs),
                        num_vertices=len(v), num_faces=len(f), num_bodies=n_bodies,
                        watertight=watertight, scale=scale, euler_number=int(euler),
                        offset=None if offset is None else tuple(float(c) for c in offset))
    return obj, report


def _unit_message(source: str, extent: float, scale: float) -> str:
    """Why an object's size is implausible, and which units would make it plausible."""
    size = "too large (over" if extent > MAX_EXTENT_M else "too small (under"
    limit = MAX_EXTENT_M if extent > MAX_EXTENT_M else MIN_EXTENT_M
    fits = sorted(((u, extent / scale * s) for u, s in _UNIT_SCALES.items()
                   if s != scale and MIN_EXTENT_M <= extent / scale * s <= MAX_EXTENT_M),
                  key=lambda ue: abs(np.log(ue[1] / 0.1)))  # nearest to a 10 cm object first
    hint = "; ".join(f"if the file is in {_UNIT_NAMES[u]} it is {e:.3g} m: pass units='{u}' "
                     f"(command line: --units {u})" for u, e in fits) \
        or "check the file's unit and pass units= or scale="
    return (f"{source}: largest extent is {extent:.3g} m after scaling by {scale:g}, {size} "
            f"{limit:g} m) for an object a hand grasps; {hint}; or check_units=False if the "
            "object really is that size")


def _check_not_flat(source: str, points: np.ndarray) -> None:
    """Raises ValueError when the points lie in one plane (or on one line): a zero-thickness
    sheet encloses nothing a hand can press on, and its inside cannot be told from outside."""
    centred = points - points.mean(axis=0)
    axes = np.linalg.svd(centred.T @ centred)[2]
    spans = np.ptp(centred @ axes.T, axis=0)  # along the principal axes, thickest first
    if spans[2] <= FLAT_RATIO * spans[0]:
        raise ValueError(f"{source}: the mesh is flat (all {len(points)} vertices in one plane, "
                         f"{spans[0]:.3g} m across, thickness {spans[2]:.2g} m): a hand cannot "
                         "grasp a zero-thickness sheet; give the surface a thickness (solidify "
                         "it) or pass check_units=False")


def _used(f, n):
    """(n,) bool: the vertices ``f`` references (an O(F) mask; ``np.unique`` sorts)."""
    mask = np.zeros(n, bool)
    mask[f.reshape(-1)] = True
    return mask


def _unit(x, fallback):
    """Normalizes rows; rows of zero length take the fallback rows."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norm > 0, x / np.where(norm > 0, norm, 1.0), fallback)


def _scatter_add(index, values, n):
    """(n, 3) sums of the rows of ``values (M, 3)`` by ``index (M,)`` (``np.add.at``, but one
    ``bincount`` per column: many times faster on millions of rows)."""
    return np.stack([np.bincount(index, weights=values[:, k], minlength=n) for k in range(3)], axis=1)


def _pack(v, f, watertight, pad_to, pad_vertices_to, dtype) -> Object:
    """Precomputes per-face tables in float64 and pads them into an Object."""
    nf, nv = len(f), len(v)
    tri = v[f]                                   # (F, 3, 3)
    edges = np.roll(tri, -1, axis=1) - tri       # edge k: corner k -> k+1
    cross = np.cross(edges[:, 0], -edges[:, 2])  # (c1 - c0) x (c2 - c0)
    normals = _unit(cross, 0.0)
    len2 = np.einsum("fkd,fkd->fk", edges, edges)
    inv_len2 = np.where(len2 > 0, 1.0 / np.where(len2 > 0, len2, 1.0), 0.0)
    inward = _unit(np.cross(normals[:, None, :], edges), 0.0)
    # Angle-weighted vertex pseudonormals.
    a, b = edges, -np.roll(edges, 1, axis=1)  # at corner k: towards k+1 and towards k-1
    angle = np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.einsum("fkd,fkd->fk", a, b))
    vpn = _scatter_add(f.reshape(-1), (angle[:, :, None] * normals[:, None, :]).reshape(-1, 3), nv)
    vpn = _unit(vpn[f], np.broadcast_to(normals[:, None, :], (nf, 3, 3)))
    # Edge pseudonormals: sum of the unit normals of all faces on the edge.
    und = np.sort(np.stack([f, np.roll(f, -1, axis=1)], axis=-1), axis=-1).reshape(-1, 2)
    inv = unique_rows(und)[2]
    epn = _scatter_add(inv, np.repeat(normals, 3, axis=0), inv.max() + 1)
    epn = _unit(epn[inv].reshape(nf, 3, 3), np.broadcast_to(normals[:, None, :], (nf, 3, 3)))
    com = _center_of_mass(tri, watertight)
    size = float(np.linalg.norm(v - com, axis=1).max())

    def pad(x, rows, fill=0):
        out = np.full((rows,) + x.shape[1:], fill, dtype=x.dtype)
        out[: len(x)] = x
        return out

    fl = lambda x, rows=pad_to: jnp.asarray(pad(x, rows).astype(dtype))  # noqa: E731
    return Object(
        vertices=fl(v, pad_vertices_to),
        vertex_mask=jnp.asarray(pad(np.ones(nv, bool), pad_vertices_to, False)),
        faces=jnp.asarray(pad(f.astype(np.int32), pad_to)),
        face_mask=jnp.asarray(pad(np.ones(nf, bool), pad_to, False)),
        corners=fl(tri), normals=fl(normals),
        columns={f"{name}{i}": fl(np.ascontiguousarray(x.reshape(nf, -1)[:, i]))
                 for name, x in (("corners", tri), ("normals", normals), ("edges", edges),
                                 ("edge_inv_len2", inv_len2), ("edge_inward", inward),
                                 ("edge_pseudonormals", epn), ("vertex_pseudonormals", vpn))
                 for i in range(x[0].size)},
        watertight=bool(watertight),
        center_of_mass=jnp.asarray(com.astype(dtype)),
        size=jnp.asarray(np.asarray(size, dtype)),
        coord_bound=jnp.asarray(np.asarray(np.abs(v).max(), dtype)),
    )


def _center_of_mass(tri, watertight):
    """Volume centroid (uniform density) of a closed mesh, else the area-weighted centroid."""
    vol = np.einsum("fd,fd->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6.0
    total = vol.sum()
    if watertight and total > 0:
        # Tetrahedra (origin, a, b, c): centroid (a + b + c) / 4.
        return (vol[:, None] * tri.sum(axis=1) / 4.0).sum(axis=0) / total
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    return (area[:, None] * tri.mean(axis=1)).sum(axis=0) / area.sum()
