"""Safe repairs of triangle meshes (host side, NumPy), used by :func:`jaxgrasp.mesh.objects.make_object`.

Each repair keeps the solid: merge exactly coincident vertices, drop degenerate, duplicated and
back-to-back faces, make the winding consistent per body and orient closed bodies outward. The
functions append what they find to ``findings`` and what they change to ``repairs`` (the
object's :class:`~jaxgrasp.mesh.objects.LoadReport`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph


def unique_rows(a):
    """``np.unique(a, axis=0, return_index=True, return_inverse=True, return_counts=True)``.

    The same rows, in the same (lexicographic) order, with the same first-occurrence indices, but
    by one stable sort of a scalar key (integer rows) or a lexsort (float rows) instead of NumPy's
    sort of structured rows, which takes seconds per million rows (a 2-million-triangle mesh
    needs several of these).

    Args:
      a: (N, K) array.

    Returns:
      (unique rows, index of each one's first occurrence, inverse (N,), counts).
    """
    a = np.asarray(a)
    n, k = a.shape
    if n == 0:
        return a, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = None
    if np.issubdtype(a.dtype, np.integer) and n and a.min() >= 0:
        width = int(a.max()) + 1
        if width ** k < 2 ** 62:  # the row as one int64: same order as the rows
            key = np.zeros(n, np.int64)
            for j in range(k):
                key = key * width + a[:, j]
            order = np.argsort(key, kind="stable")
            s = key[order]
            new = np.empty(n, bool)
            new[0], new[1:] = True, s[1:] != s[:-1]
    if order is None:
        order = np.lexsort(a.T[::-1])  # stable, column 0 the primary key
        s = a[order]
        new = np.empty(n, bool)
        new[0], new[1:] = True, np.any(s[1:] != s[:-1], axis=1)
    inverse = np.empty(n, np.int64)
    inverse[order] = np.cumsum(new) - 1
    starts = np.nonzero(new)[0]
    first = order[starts]
    return a[first], first, inverse, np.diff(np.append(starts, n))


def merge_vertices(v, f, findings, repairs):
    """Merges exactly coincident vertices (STL stores three copies per face), keeping the order
    of first occurrence."""
    uniq, first, inverse, _ = unique_rows(v + 0.0)  # + 0.0: -0.0 and 0.0 are one vertex
    if len(uniq) == len(v):
        return v, f
    findings.append(f"{len(v) - len(uniq)} duplicate vertices (exactly coincident)")
    repairs.append(f"merged duplicate vertices: {len(v)} -> {len(uniq)}")
    order = np.argsort(first)                      # unique rows in order of first occurrence
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return v[first[order]], rank[inverse.reshape(-1)][f]


def face_areas(v, f):
    return 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)


def drop_bad_faces(v, f, findings, repairs):
    """Drops degenerate faces, duplicated faces and back-to-back pairs (zero-volume sheets)."""
    e1, e2 = v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]
    cross = np.linalg.norm(np.cross(e1, e2), axis=1)
    repeated = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 2] == f[:, 0])
    # Collinear corners: |e1 x e2| at the level of float64 rounding of |e1||e2|.
    collinear = cross <= 64 * np.finfo(np.float64).eps * np.linalg.norm(e1, axis=1) * \
        np.linalg.norm(e2, axis=1)
    degenerate = repeated | collinear
    if degenerate.any():
        findings.append(f"{int(degenerate.sum())} zero-area faces ({int(repeated.sum())} with a "
                        "repeated vertex)")
        repairs.append(f"dropped {int(degenerate.sum())} zero-area faces")
        f = f[~degenerate]
        if len(f) == 0:
            return f
    # Canonical key: sorted vertex ids; orientation parity tells same/opposite winding.
    order = np.argsort(f, axis=1)
    key = np.take_along_axis(f, order, axis=1)
    # Parity of the sorting permutation (number of inversions mod 2): 0 = same orientation.
    parity = ((order[:, 0] > order[:, 1]).astype(int) + (order[:, 0] > order[:, 2])
              + (order[:, 1] > order[:, 2])) % 2
    _, first, inv, cnt = unique_rows(key)
    drop = np.zeros(len(f), bool)
    if (cnt > 1).any():
        n_pos = np.bincount(inv, weights=(parity == 0), minlength=len(cnt))
        n_neg = cnt - n_pos
        # Each opposite pair is a zero-volume sheet (dropped), and same-orientation copies are
        # duplicates: keep one copy with the majority orientation when the two counts differ,
        # none when they are equal. Kept: the first such copies in file order.
        keep_n = (n_pos != n_neg).astype(np.int64)
        major = np.where(n_pos >= n_neg, 0, 1)
        multi = cnt[inv] > 1
        cand = np.nonzero(multi & (parity == major[inv]))[0]
        cand = cand[np.argsort(inv[cand], kind="stable")]  # grouped, file order within a group
        g = inv[cand]
        rank = np.arange(len(cand)) - np.searchsorted(g, g, side="left")
        drop = multi.copy()
        drop[cand[rank < keep_n[g]]] = False
        # A back-to-back pair inside a closed surface (one copy belongs to it, the other is a
        # stray flipped copy) must keep one face: restore the group's first face where dropping
        # the whole group opens an edge.
        kept_counts = _edge_counts_of(f[~drop], f)
        emptied = (cnt > 1) & (np.bincount(inv[~drop], minlength=len(cnt)) == 0)
        restore = first[emptied]
        drop[restore[(kept_counts[restore] == 1).any(axis=1)]] = False
        pairs = int(np.minimum(n_pos, n_neg).sum())
        findings.append(f"{int((cnt[inv] > 1).sum())} faces in {int((cnt > 1).sum())} groups of "
                        f"duplicates ({pairs} back-to-back pairs enclosing zero volume)")
        repairs.append(f"dropped {int(drop.sum())} duplicated / back-to-back faces")
    return f[~drop]


def _edge_counts_of(kept, query):
    """For each face of ``query``: how many faces of ``kept`` use each of its 3 edges."""
    width = int(max(kept.max(initial=0), query.max())) + 1

    def key(x):
        nxt = np.roll(x, -1, axis=1)
        return np.minimum(x, nxt) * width + np.maximum(x, nxt)

    uniq, cnt = np.unique(key(kept), return_counts=True)
    q = key(query)
    pos = np.minimum(np.searchsorted(uniq, q), max(len(uniq) - 1, 0))
    return np.where((len(uniq) > 0) & (uniq[pos] == q), cnt[pos], 0)


def edge_stats(f):
    """Per undirected edge: number of faces, and whether all 2-face edges are oppositely used."""
    directed = np.stack([f, np.roll(f, -1, axis=1)], axis=-1).reshape(-1, 2)
    und = np.sort(directed, axis=1)
    uniq, _, inv, counts = unique_rows(und)
    forward = (directed[:, 0] < directed[:, 1]).astype(np.int64)
    n_fwd = np.bincount(inv.reshape(-1), weights=forward, minlength=len(uniq))
    consistent = bool(np.all(n_fwd[counts == 2] == 1))
    return counts, consistent


def orient(v, f, findings, repairs):
    """Makes the winding consistent per body and orients closed bodies outward.

    Returns:
      (faces, body label per face).
    """
    nf = len(f)
    directed = np.stack([f, np.roll(f, -1, axis=1)], axis=-1).reshape(-1, 2)
    face_of = np.repeat(np.arange(nf), 3)
    und = np.sort(directed, axis=1)
    _, _, inv, counts = unique_rows(und)
    # Face adjacency through manifold (2-face) edges only.
    two = counts[inv] == 2
    order = np.argsort(inv[two], kind="stable")
    pair_faces = face_of[two][order].reshape(-1, 2)
    pair_dirs = directed[two][order].reshape(-1, 2, 2)
    # Same direction on both sides: the two faces disagree on orientation.
    flip_rel = np.all(pair_dirs[:, 0] == pair_dirs[:, 1], axis=1)
    adj = scipy.sparse.coo_matrix(
        (np.ones(len(pair_faces)), (pair_faces[:, 0], pair_faces[:, 1])), shape=(nf, nf))
    n_comp, labels = scipy.sparse.csgraph.connected_components(adj, directed=False)
    if flip_rel.any():
        findings.append(f"inconsistent winding: {int(flip_rel.sum())} edges where neighbouring "
                        "faces disagree")
        flips, orientable = _propagate_orientation(nf, pair_faces, flip_rel, labels)
        if orientable:
            repairs.append(f"flipped {int(flips.sum())} faces to make the winding consistent")
            f = np.where(flips[:, None], f[:, ::-1], f)
        else:
            findings.append("the mesh is not orientable (Moebius-like); winding left as it is")
    # Outward orientation of closed bodies: negative signed volume means inside-out.
    vol = np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])) / 6.0
    body_vol = np.bincount(labels, weights=vol, minlength=n_comp)
    edge_body = labels[face_of]
    closed = np.ones(n_comp, bool)
    np.logical_and.at(closed, edge_body, counts[inv] == 2)
    inverted = closed & (body_vol < 0)
    if inverted.any():
        findings.append(f"{int(inverted.sum())} closed bodies oriented inward")
        repairs.append(f"flipped {int(inverted.sum())} inside-out bodies")
        f = np.where(inverted[labels][:, None], f[:, ::-1], f)
    return f, labels


def _propagate_orientation(nf, pair_faces, flip_rel, labels):
    """A flip per face so that all neighbours agree, and whether one exists.

    Vectorized for meshes of millions of faces: a breadth-first spanning forest (SciPy) from a
    virtual root joined to the first face of every body, then the parity of each face's tree path
    to the root by pointer jumping (log of the depth passes); the first face of a body keeps its
    winding.
    """
    n = nf + 1  # node nf: the virtual root
    roots = np.unique(labels, return_index=True)[1]
    a = np.concatenate([pair_faces[:, 0], np.full(len(roots), nf)])
    b = np.concatenate([pair_faces[:, 1], roots])
    rel = np.concatenate([flip_rel, np.zeros(len(roots), bool)])
    graph = scipy.sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)).tocsr()
    _, pred = scipy.sparse.csgraph.breadth_first_order(graph, nf, directed=False,
                                                       return_predecessors=True)
    key = np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)
    order = np.argsort(key, kind="stable")
    p = pred[:nf].astype(np.int64)  # every face is reached (its body's first face is a child)
    faces = np.arange(nf)
    x = rel[order[np.searchsorted(key[order], np.minimum(p, faces) * n + np.maximum(p, faces))]]
    p, x = np.append(p, nf), np.append(x, False)  # the root is its own parent
    while (p != nf).any():  # x: parity of the path from each node to p; halve the paths
        x, p = x ^ x[p], p[p]
    flips = x[:nf]
    ok = bool(np.all((flips[pair_faces[:, 0]] ^ flips[pair_faces[:, 1]]) == flip_rel))
    return flips, ok
