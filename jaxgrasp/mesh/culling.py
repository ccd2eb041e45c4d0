"""Exact, BVH-free culling for the distance query: a uniform grid of candidate lists.

Each cell of a uniform grid over the object's bounding box (plus a margin) lists every triangle
that can be nearest to some point of the cell, so a query tests only its cell's list instead of
all faces, with the same result as brute force. For a cell C (enlarged by 1e-3, so that points
rounded into a neighbouring cell stay covered) with centre c and circumradius r:

    U_C = min over probe triangles P of  max over the 8 corners x of C of dist(x, P)

bounds max over C of dist(x, mesh) from above (dist(., P) is convex, so its maximum over the box
is at a corner; the probes are the triangles with the centroids nearest to c). A triangle T
can be nearest to some x in C only if min over C of dist(x, T) <= U_C, and two lower bounds of
that minimum are used: dist(c, T) - r, and the gap between C and T's bounding box. The list is
{T : both lower bounds <= U_C + margin}; ``margin`` covers the float32 error bound of the query,
so the exact path's near-tie test sees the same triangles as brute force.

Cells whose list exceeds ``max_candidates`` (deep inside thick objects or far away, where the
bound is weak) are marked incomplete; points in them, and points outside the grid, fall back to
brute force chunk by chunk (see :func:`jaxgrasp.mesh.geometry.signed_distance`). The grid is built on
the host (NumPy; scipy's k-d tree only to enumerate candidate supersets at build time); the query
is a gather.
"""

from __future__ import annotations

import dataclasses
import time

import jax.numpy as jnp
import numpy as np
from flax import struct
from scipy.spatial import cKDTree

from jaxgrasp.mesh.objects import Object

# Error-bound multiplier of the distance query (jaxgrasp.mesh.geometry):
# tol = TOL_FACTOR * eps(dtype) * (max|p| + max|vertex coordinate|). The closest-point and sign
# quantities are sums of a few products of coordinate differences, each with a rounding error of
# a few eps times the coordinate scale; 64 leaves a wide margin. The grid's margin covers it.
TOL_FACTOR = 64.0


@struct.dataclass
class Grid:
    """Candidate lists of a uniform grid (no static fields: grids of equal padded shapes share
    compiled functions).

    Attributes:
      origin: (3,) corner of cell (0, 0, 0).
      inv_cell: () 1 / cell edge length.
      dims: (3,) int32 cells per axis.
      cell_faces: (Cmax, K) int32 face indices per cell, -1 for empty slots.
      cell_ok: (Cmax,) bool, the cell's list is complete (else: brute force).
    """

    origin: jnp.ndarray
    inv_cell: jnp.ndarray
    dims: jnp.ndarray
    cell_faces: jnp.ndarray
    cell_ok: jnp.ndarray


@dataclasses.dataclass(frozen=True)
class GridStats:
    """Host-side summary of a grid build."""

    dims: tuple[int, int, int]
    cell_size: float
    list_length_mean: float
    list_length_max: int
    complete_fraction: float
    build_seconds: float


def lookup(grid: Grid, points):
    """Cell index and completeness for points (N, 3).

    Returns:
      cell: (N,) int32 (clipped into the grid), ok: (N,) bool inside the grid and complete.
    """
    ijk = jnp.floor((points - grid.origin.astype(points.dtype)) *
                    grid.inv_cell.astype(points.dtype))
    inside = jnp.all((ijk >= 0) & (ijk < grid.dims), axis=-1)
    ijk = jnp.clip(ijk, 0, grid.dims - 1).astype(jnp.int32)
    cell = (ijk[:, 0] * grid.dims[1] + ijk[:, 1]) * grid.dims[2] + ijk[:, 2]
    return cell, inside & grid.cell_ok[cell]


def triangle_tables_np(tri):
    """Float64 per-triangle tables (edges, unit normal, inward edge normals, 1/|edge|^2)."""
    edges = np.roll(tri, -1, axis=1) - tri
    normal = np.cross(edges[:, 0], -edges[:, 2])
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-300)
    inward = np.cross(normal[:, None, :], edges)
    inv_len2 = 1.0 / np.maximum(np.einsum("tkd,tkd->tk", edges, edges), 1e-300)
    return dict(corners=tri, edges=edges, normal=normal, inward=inward, inv_len2=inv_len2)


def point_triangle_distance_np(p, tables, which):
    """Float64 distance from points (M, 3) to triangles ``which`` (M,), row by row (NumPy).

    Projection if inside the triangle, else the nearest edge segment (as on the device).
    """
    tri, edges = tables["corners"][which], tables["edges"][which]
    rel = p[:, None, :] - tri                                  # (M, 3, 3)
    inside = (np.einsum("mkd,mkd->mk", tables["inward"][which], rel) >= 0).all(axis=1)
    h = np.einsum("md,md->m", tables["normal"][which], rel[:, 0])
    t = np.clip(np.einsum("mkd,mkd->mk", rel, edges) * tables["inv_len2"][which], 0, 1)
    diff = rel - t[..., None] * edges
    d2 = np.where(inside, h * h, np.einsum("mkd,mkd->mk", diff, diff).min(axis=1))
    return np.sqrt(d2)


def build_grid(obj: Object, *, resolution: int | None = None, cell_edges: float = 1.5,
               margin: float = 0.1,
               max_candidates: int = 256, pad_cells_to: int | None = None,
               nearest_probe: int = 4) -> tuple[Grid, GridStats]:
    """Builds the candidate-list grid of an object (host side).

    Args:
      obj: the object.
      resolution: cells along the longest side of the grid (cubic cells). Default: cells of
        ``cell_edges`` median triangle edge lengths, 8 to 64 along the longest side (lists grow
        with the cell size; build time and memory with the cell count).
      cell_edges: cell size in median edge lengths when ``resolution`` is None.
      margin: grid extends this fraction of ``obj.size`` beyond the bounding box.
      max_candidates: list capacity K; longer lists mark the cell incomplete.
      pad_cells_to: cell rows (default next power of two), to share compiled shapes.
      nearest_probe: triangles (nearest centroids) used for the upper bound U_c.

    Returns:
      (grid, stats).
    """
    t0 = time.perf_counter()
    mask = np.asarray(obj.face_mask)
    tri = np.asarray(obj.corners, np.float64)[mask]
    size = float(obj.size)
    lo = tri.reshape(-1, 3).min(axis=0) - margin * size
    hi = tri.reshape(-1, 3).max(axis=0) + margin * size
    if resolution is None:
        edge = np.median(np.linalg.norm(np.roll(tri, -1, axis=1) - tri, axis=-1))
        resolution = int(np.clip(np.ceil((hi - lo).max() / (cell_edges * edge)), 8, 64))
    h = float((hi - lo).max()) / resolution
    dims = np.maximum(np.ceil((hi - lo) / h).astype(int), 1)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in dims], indexing="ij"), -1).reshape(-1, 3)
    centers = lo + (ijk + 0.5) * h
    # Circumradius, enlarged by 1e-3 so that points rounded across a cell face stay covered.
    radius = 0.5 * np.sqrt(3.0) * h * (1 + 1e-3)
    # Covers the float32 error bound of the query (the window of the exact path's tie test,
    # TOL_FACTOR * eps * (|p| + |vertex|) for any p in the grid) and float32 rounding.
    max_abs = float(np.abs(np.concatenate([lo, hi])).max())
    slack = 2 * TOL_FACTOR * float(np.finfo(np.float32).eps) * max_abs + 1e-6 * size
    centroid = tri.mean(axis=1)
    tri_radius = np.linalg.norm(tri - centroid[:, None], axis=-1).max()
    tree = cKDTree(centroid)
    k = min(nearest_probe, len(tri))
    _, near = tree.query(centers, k=k)
    near = near.reshape(len(centers), k)
    tables = triangle_tables_np(tri)
    # U >= max over the (slightly enlarged) cell of dist(x, mesh): dist(., T) is convex, so its
    # maximum over the cell is at a corner; take the best of the probe triangles.
    offsets = 0.5 * h * (1 + 1e-3) * np.array(np.meshgrid(*[[-1, 1]] * 3)).reshape(3, -1).T
    probe = np.repeat(near, 8, axis=0).reshape(-1)
    corner_pts = np.repeat((centers[:, None, :] + offsets[None]).reshape(-1, 3), k, axis=0)
    upper = point_triangle_distance_np(corner_pts, tables, probe).reshape(-1, 8, k)
    upper = upper.max(axis=1).min(axis=1)
    # dist(x, T) >= dist(c, T) - radius for x in the cell.
    bound = upper + radius + slack
    # Superset by centroid distance: dist(c, T) >= |c - centroid_T| - tri_radius.
    counts = tree.query_ball_point(centers, bound + tri_radius, return_length=True)
    lists = np.full((len(centers), max_candidates), -1, np.int32)
    lengths = np.zeros(len(centers), np.int64)
    ids = np.nonzero(mask)[0].astype(np.int32)
    cells = np.nonzero(counts <= 4 * max_candidates)[0]  # longer supersets: incomplete
    sup = tree.query_ball_point(centers[cells], (bound + tri_radius)[cells])
    pair_cell = np.repeat(cells, [len(s) for s in sup])
    pair_tri = np.fromiter((t for s in sup for t in s), np.int64, len(pair_cell))
    keep = np.zeros(len(pair_cell), bool)
    half = 0.5 * h * (1 + 1e-3)
    tri_lo, tri_hi = tri.min(axis=1), tri.max(axis=1)
    for a in range(0, len(pair_cell), 1 << 20):  # bounded memory
        cell, t = pair_cell[a:a + (1 << 20)], pair_tri[a:a + (1 << 20)]
        c = centers[cell]
        # Two lower bounds of min over the cell of dist(x, T): the gap between the cell's box
        # and the triangle's box (cheap, first), and dist(c, T) - radius.
        gap = np.maximum(np.maximum(tri_lo[t] - (c + half), (c - half) - tri_hi[t]), 0.0)
        near = np.einsum("ij,ij->i", gap, gap) <= np.square(upper[cell] + slack)
        sub = np.nonzero(near)[0]
        near[sub] = point_triangle_distance_np(c[sub], tables, t[sub]) <= bound[cell[sub]]
        keep[a:a + (1 << 20)] = near
    pair_cell, pair_tri = pair_cell[keep], pair_tri[keep]
    lengths[cells] = np.bincount(pair_cell, minlength=len(centers))[cells]
    ok = np.zeros(len(centers), bool)
    ok[cells] = lengths[cells] <= max_candidates
    sel = ok[pair_cell]
    pair_cell, pair_tri = pair_cell[sel], pair_tri[sel]
    # Slot of each pair within its cell's list (pairs are grouped by cell, in order).
    start = np.searchsorted(pair_cell, pair_cell, side="left")
    lists[pair_cell, np.arange(len(pair_cell)) - start] = ids[pair_tri]
    n_cells = len(centers)
    if pad_cells_to is None:
        pad_cells_to = 1 << int(np.ceil(np.log2(n_cells)))
    if pad_cells_to < n_cells:
        raise ValueError(f"pad_cells_to={pad_cells_to} < {n_cells} grid cells")
    lists = np.concatenate([lists, np.full((pad_cells_to - n_cells, max_candidates), -1,
                                           np.int32)])
    ok = np.concatenate([ok, np.zeros(pad_cells_to - n_cells, bool)])
    dtype = np.asarray(obj.corners).dtype
    grid = Grid(origin=jnp.asarray(lo.astype(dtype)),
                inv_cell=jnp.asarray(np.asarray(1 / h, dtype)),
                dims=jnp.asarray(dims.astype(np.int32)), cell_faces=jnp.asarray(lists),
                cell_ok=jnp.asarray(ok))
    good = lengths[ok[:n_cells]]
    stats = GridStats(dims=tuple(int(x) for x in dims), cell_size=h,
                      list_length_mean=float(good.mean()) if len(good) else 0.0,
                      list_length_max=int(good.max()) if len(good) else 0,
                      complete_fraction=float(ok.sum() / n_cells),
                      build_seconds=time.perf_counter() - t0)
    return grid, stats
