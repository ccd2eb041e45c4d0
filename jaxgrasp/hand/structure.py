"""The structure of a hand's kinematic tree: its palm, the arm above it, rigidly joined bodies.

Pure functions of the tree (a :class:`~jaxgrasp.hand.mjcf.TreeSpec` or a
:class:`~jaxgrasp.hand.model.HandModel`: ``body_parent``, ``body_joints``, ``palm``,
``fixed_joints``), used by the loader (:mod:`jaxgrasp.hand.mjcf`) and the annotations.
"""

from __future__ import annotations


def palm_index(body_parent, body_joints) -> int:
    """Index of the palm: the deepest body on the path from the root to every finger.

    A finger ends in a leaf body with a joint between it and the root (the root's own joints
    aside). With fewer than two fingers the root is the palm. For a hand mounted on a forearm
    and a wrist (MuJoCo Menagerie's Shadow Hand: ``rh_forearm`` -> ``rh_wrist`` -> ``rh_palm``)
    the palm is below the root; the bodies above it are the *arm*.
    """
    B = len(body_parent)
    has_child = [False] * B
    for p in body_parent:
        if p >= 0:
            has_child[p] = True

    def path(b: int) -> list[int]:
        out = []
        while b >= 0:
            out.append(b)
            b = body_parent[b]
        return out[::-1]

    paths = [path(b) for b in range(1, B) if not has_child[b] and any(body_joints[a] for a in path(b)[1:])]
    if len(paths) < 2:
        return 0
    palm = 0
    for level in zip(*paths):
        if len(set(level)) > 1:
            break
        palm = level[0]
    return palm


def arm_bodies(tree) -> tuple[int, ...]:
    """The bodies above the palm (a forearm, a wrist), root first; empty when the root is the palm.
    ``tree``: a :class:`TreeSpec` or :class:`~jaxgrasp.hand.model.HandModel`."""
    out, b = [], tree.body_parent[tree.palm] if tree.palm > 0 else -1
    while b >= 0:
        out.append(b)
        b = tree.body_parent[b]
    return tuple(out[::-1])


def rigid_groups(tree) -> list[int]:
    """Per body, the index of the highest body it is rigidly joined to (no joint between them
    that is not held fixed): bodies with equal values never move relative to each other."""
    fixed = set(tree.fixed_joints)
    out: list[int] = []
    for b, p in enumerate(tree.body_parent):
        moves = any(j not in fixed for j in tree.body_joints[b])
        out.append(b if p < 0 or moves else out[p])
    return out
