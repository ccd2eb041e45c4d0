"""MJX batch backend of :mod:`jaxgrasp.simulate`: many grasps of one object in one rollout.

:func:`simulate_grasps_mjx` (or :class:`MjxSimulator` on a built scene) runs the protocol of
:func:`jaxgrasp.sim.simulate.simulate_scene` for a batch of grasps of ONE object and hand: every
(grasp, direction) pair is one rollout, all rollouts advance together in one jitted, vmapped
``mujoco.mjx`` loop (a ``while_loop`` over time steps that ends when every rollout has failed or
the push is over). Same scene builder (:func:`jaxgrasp.sim.scene.build_scene`), same
:class:`~jaxgrasp.sim.protocol.SimConfig`, same schedule (:func:`jaxgrasp.sim.protocol.ramp`): from
the pregrasp, ramp the position targets to the grasp angles over ``close_time``, then to the
squeeze angles over ``squeeze_time``, push (or tilt gravity) for ``duration``, check the object's
pose every 0.1 s against its pose at rest before the closing, a rollout fails at its first failing
check. Pregrasp and squeeze: the grasp file's, else derived on the host
(:func:`jaxgrasp.sim.forces.grasp_protocol_poses`: C MuJoCo, one scene per grasp). The initial-penetration test runs on the host in C MuJoCo on the
same model (a grasp over the limit never reaches MJX). Grasps differ only in the pose of the
hand's root body (a mocap body, moved from the pregrasp's palm pose to the grasp's over the
closing ramp as in the C loop: ``mocap_pos``/``mocap_quat`` per rollout, and ``body_pos``/
``body_quat`` of the root replaced per rollout in the MJX model as well, because MJX 3.17's
kinematics applies the mocap pose to the mocap body alone and poses its children from
``body_pos``; a welded root: ``body_pos``/``body_quat`` only) and in the joint angles and
actuator targets.

MJX (``mujoco-mjx``, the JAX implementation, ``impl="jax"``) against the C engine, for this scene:

* **cylinders**: MJX has no cylinder-box or cylinder-mesh collision (the Shadow Hand's four
  knuckles are cylinders), so :func:`build_mjx_scene` turns every cylinder into a 16-sided convex
  prism of the same pose, height and cross-section area (its surface within +0.12 / -0.06 mm of
  the cylinder's for the knuckles' 9 mm radius; same mass and inertia). Spheres, capsules,
  boxes and the object's convex mesh pieces are supported as they are.
* **contacts**: MJX evaluates every candidate geom pair at every step (no runtime broad phase) and
  emits a fixed number of contacts per pair (capsule-mesh 2, box/mesh-mesh 4, repeated at one
  point when the collider finds fewer: the palm box against the sphere gives 4 copies of one
  contact; C MuJoCo 4.0 emits what its multi-contact convex collider finds), so contact points
  differ from the C engine's even where the geometry is the same. ``max_contact_points``
  (:data:`MAX_CONTACTS`, a custom numeric in the model) keeps only the deepest contacts; it is
  exact while fewer contacts penetrate (contacts beyond the margin exert no force), and a grasp
  that reaches it is reported (a warning; ``contacts_capped`` in :meth:`MjxSimulator.run`).
* **solver**: elliptic cones, ``condim`` 4, ``impratio``, implicit-fast integrator, Newton solver,
  ``solref``/``solimp`` and the iteration counts carry over; ``noslip_iterations`` (2 in the
  scene) does not: MJX has no noslip solver, so slip at the contacts is resolved only by the main
  solver's soft cone. Precision is JAX's: float32, or float64 with ``jax_enable_x64`` (C: float64).
* **cost**: MJX collides all candidate geom pairs every step (248 for the Shadow Hand and a
  one-piece object, 30 collision functions to compile) and its Newton step on elliptic cones
  builds a dense ``nefc x nefc`` matrix (4 rows per contact), which ``max_contact_points``
  bounds. The cost is linear in the batch; on a CPU the C engine is several hundred times
  faster (``benchmarks/simulate.py``; measurements: docs/decisions.md, "MJX backend").
* **CPU deadlock workaround**: on the CPU backend the rollout is compiled with MJX's Cholesky
  factorizations and triangular solves in plain XLA ops
  (:func:`jaxgrasp.sim.lapack_free.without_lapack`, a rewrite of the rollout's own jaxpr: nothing
  is patched): jaxlib 0.10.2's batched LAPACK kernels deadlock on a 2-thread pool
  (docs/decisions.md, "No LAPACK calls").
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from jaxgrasp.hand.model import load_hand
from jaxgrasp.sim.forces import grasp_protocol_poses, joint_vector
from jaxgrasp.sim.grasp_files import object_mesh_of
from jaxgrasp.sim.lapack_free import without_lapack
from jaxgrasp.sim.protocol import (
    DIRECTIONS,
    DirectionResult,
    SimConfig,
    SimResult,
    failure_reason,
    ramp,
    schedule,
    verdict,
)
from jaxgrasp.sim.scene import Scene, build_scene, convex_pieces, ctrl_for, penetrations

__all__ = ["CYLINDER_SIDES", "MAX_CONTACTS", "MjxSimulator", "build_mjx_scene", "mjx_available",
           "simulate_grasps_mjx"]

CYLINDER_SIDES = 16  # sides of the prism that replaces a cylinder geom
MAX_CONTACTS = 32  # MJX max_contact_points: deepest contacts kept per step


def mjx_available() -> bool:
    """True when ``mujoco.mjx`` (package ``mujoco-mjx``) imports."""
    try:
        from mujoco import mjx  # noqa: F401  (optional dependency mujoco-mjx: imported where used)
    except Exception:  # ImportError, or an mjx built for another mujoco
        return False
    return True


def build_mjx_scene(hand, pieces, T_world_palm, center_of_mass, cfg, *, max_contacts: int = MAX_CONTACTS) -> Scene:
    """:func:`jaxgrasp.sim.scene.build_scene` with what MJX needs: cylinders as prisms
    (:data:`CYLINDER_SIDES`) and ``max_contact_points``. The C engine runs this model too."""
    return build_scene(hand, pieces, T_world_palm, center_of_mass, cfg, cylinder_sides=CYLINDER_SIDES,
                       numeric={"max_contact_points": int(max_contacts)})


class MjxSimulator:
    """The protocol's rollouts for one scene (one hand, one object) in MJX, compiled once per
    batch size and reused for any number of grasps.

    Args:
        scene: from :func:`build_mjx_scene` (its root pose is replaced per grasp).
        hand: the :class:`jaxgrasp.hand.model.HandModel` of the scene (root body name).
        cfg: :class:`jaxgrasp.sim.protocol.SimConfig`.
        batch_size: grasps per call of the compiled rollout (6 rollouts each); fewer are padded.
        compiler_options: XLA options for the rollout's compilation (e.g.
            ``{"xla_backend_optimization_level": 0}``: faster to compile, slower to run).
    """

    def __init__(self, scene: Scene, hand, cfg, *, batch_size: int = 8, compiler_options: dict | None = None):
        from mujoco import mjx  # optional dependency (mujoco-mjx), imported where used

        self.scene, self.hand, self.cfg = scene, hand, cfg
        self.batch_size = int(batch_size)
        m = scene.model
        self.root = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, hand.body_names[0])
        d = mujoco.MjData(m)
        mujoco.mj_kinematics(m, d)
        parent = int(m.body_parentid[self.root])  # welded chain: its pose does not depend on qpos
        self.T_world_parent = np.eye(4)
        self.T_world_parent[:3, :3] = d.xmat[parent].reshape(3, 3)
        self.T_world_parent[:3, 3] = d.xpos[parent]
        self.x0 = np.zeros(7)
        self.x0[:3] = m.body_pos[scene.object_body]
        self.x0[3] = 1.0
        cid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_NUMERIC, "max_contact_points")
        self.max_contacts = int(m.numeric_data[m.numeric_adr[cid]]) if cid >= 0 else -1
        self.mx = mjx.put_model(m)
        self.d0 = mjx.make_data(m)
        self.dtype = self.mx.body_pos.dtype
        self.compile_s = 0.0  # seconds spent compiling the rollout (on the first batch)
        self._exec = None
        # CPU: Cholesky factorizations and triangular solves in plain XLA ops, not LAPACK (deadlock;
        # module docstring); a rewrite of this function's jaxpr, no global state changed
        impl = without_lapack(self._rollout_impl) if jax.default_backend() == "cpu" else self._rollout_impl
        self._rollout = jax.jit(impl, compiler_options=compiler_options)

    # -- host side ------------------------------------------------------------------------------

    def root_pose(self, T_world_palm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(pos (3,), quat (4,))`` of the root body in its parent for a palm pose (as build_scene)."""
        T = np.linalg.inv(self.T_world_parent) @ np.asarray(T_world_palm, np.float64)
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, np.ascontiguousarray(T[:3, :3]).flatten())
        return T[:3, 3].copy(), quat

    def initial_state(self, T_world_palm, q_grasp, q_pregrasp=None) -> dict:
        """C MuJoCo at the grasp: penetrations, contacts, the object's initial pose, and the
        initial ``qpos`` (the hand at the pregrasp, default the grasp)."""
        m, s = self.scene.model, self.scene
        pos0, quat0 = m.body_pos[self.root].copy(), m.body_quat[self.root].copy()
        m.body_pos[self.root], m.body_quat[self.root] = self.root_pose(T_world_palm)
        try:
            d = mujoco.MjData(m)
            d.qpos[s.hand_qadr] = q_grasp
            d.qpos[s.object_qadr:s.object_qadr + 7] = self.x0
            d.ctrl[:] = ctrl_for(s, q_grasp)
            mujoco.mj_forward(m, d)
            ho, hh, n = penetrations(s, d)
            qpos = d.qpos.copy()
            if q_pregrasp is not None:
                qpos[s.hand_qadr] = q_pregrasp
            return {"ho": ho, "hh": hh, "ncon": n, "qpos": qpos,
                    "p0": d.xipos[s.object_body].copy(), "q0": d.xquat[s.object_body].copy()}
        finally:
            m.body_pos[self.root], m.body_quat[self.root] = pos0, quat0

    def run(self, palms, q_grasps, q_squeezes, q_pregrasps=None, *, progress=None, palm_pregrasps=None) -> list[dict]:
        """Simulate grasps ``i``: palm pose ``palms[i] (4, 4)``, joint angles ``q_grasps[i] (J,)``,
        squeeze targets ``q_squeezes[i] (J,)``, start ``q_pregrasps[i] (J,)`` (None: the grasps)
        and ``palm_pregrasps[i] (4, 4)`` (None: the palms; its rotation is the palm's).
        Returns :func:`simulate_scene`'s dicts, plus ``contacts_capped``. ``progress(n)`` is called
        after each batch with its grasp count."""
        cfg = self.cfg
        out, jobs = [], []
        q_pregrasps = q_grasps if q_pregrasps is None else q_pregrasps
        palm_pregrasps = palms if palm_pregrasps is None else palm_pregrasps
        if self.scene.mocap < 0 and any(not np.allclose(a, b) for a, b in zip(palms, palm_pregrasps)):
            raise ValueError("this scene's hand root is welded (not a mocap body): the palm cannot move")
        for i, (T, q, qs, qp, Tp) in enumerate(zip(palms, q_grasps, q_squeezes, q_pregrasps, palm_pregrasps)):
            st = self.initial_state(T, q, qp)
            st["pp"] = np.asarray(Tp, np.float64)[:3, 3]
            r = {"initial_penetration_mm": st["ho"] * 1e3, "self_penetration_mm": st["hh"] * 1e3,
                 "initial_contacts": st["ncon"], "directions": [], "contacts_capped": False}
            if st["ho"] > cfg.max_initial_penetration:
                r.update(success=False, reason="initial_penetration")
            else:
                jobs.append((i, T, q, qs, qp, st))
            out.append(r)
        B = self.batch_size
        for b in range(0, len(jobs), B):
            chunk = jobs[b:b + B]
            res = self._run_chunk(chunk + [chunk[-1]] * (B - len(chunk)))
            for k, (i, *_rest) in enumerate(chunk):
                r, reason = out[i], "ok"
                for j, (name, _u) in enumerate(DIRECTIONS):
                    wd, wr, ok, nc = (float(res[0][k, j]), float(res[1][k, j]), bool(res[2][k, j]), int(res[3][k, j]))
                    r["contacts_capped"] |= self.max_contacts > 0 and nc >= self.max_contacts
                    r["directions"].append(DirectionResult(name, wd * 1e3, wr, ok))
                    if not ok:
                        reason = failure_reason(name, wd, cfg)
                        if cfg.stop_on_failure:
                            break
                success, reason = verdict(r["directions"], reason)
                r.update(success=success, reason=reason)
            if progress is not None:
                progress(len(chunk))
        return out

    def _run_chunk(self, jobs) -> tuple[np.ndarray, ...]:
        cfg, s = self.cfg, self.scene
        dirs = np.array([u for _, u in DIRECTIONS], np.float64)  # (6, 3)
        rows = {k: [] for k in ("rp", "rq", "pp", "qpos", "cp", "cg", "cs", "f", "g", "p0", "q0")}
        for _i, T, q, qs, qp, st in jobs:
            rp, rq = self.root_pose(T)
            pp = st["pp"] if s.mocap >= 0 else rp  # a mocap root's position is in the world frame
            cp, cg, cs = ctrl_for(s, qp), ctrl_for(s, q), ctrl_for(s, qs)
            for u in dirs:
                push = cfg.force_per_kg * s.mass * u if cfg.protocol == "dexgraspbench" else np.zeros(3)
                grav = cfg.gravity * u if cfg.protocol == "gravity6" else np.zeros(3)
                for k, v in zip(rows, (rp, rq, pp, st["qpos"], cp, cg, cs, push, grav, st["p0"], st["q0"])):
                    rows[k].append(v)
        args = [np.asarray(rows[k], self.dtype) for k in rows]
        if self._exec is None:  # compile ahead of time, so that its time is known on its own
            t0 = time.perf_counter()
            self._exec = self._rollout.lower(*args).compile()
            self.compile_s = time.perf_counter() - t0
        res = [np.asarray(x) for x in self._exec(*args)]
        n = len(jobs)
        return tuple(x.reshape(n, len(DIRECTIONS)) for x in res)

    # -- device side ----------------------------------------------------------------------------

    def _rollout_impl(self, rp, rq, pp, qpos, cp, cg, cs, push, grav, p0, q0):
        """Rollouts ``r`` (leading axis): root pose at the grasp, root position at the pregrasp, initial qpos, pregrasp/grasp/squeeze controls, push
        force, push gravity, object's initial centre of mass and orientation. Returns the worst
        displacement [m], worst rotation [deg], success and most penetrating contacts, each ``(R,)``."""
        from mujoco import mjx  # optional dependency (mujoco-mjx), imported where used

        cfg, mx, obj, root = self.cfg, self.mx, self.scene.object_body, self.root
        n_close, n_squeeze, n_check, n_push = schedule(cfg)
        pre, total = n_close + n_squeeze, n_close + n_squeeze + n_push
        R = qpos.shape[0]
        zero = jnp.zeros((), self.dtype)

        mid = self.scene.mocap

        def step(d, k, rp, rq, pp, cp, cg, cs, push, grav):
            on = k >= pre
            kf = k.astype(self.dtype)
            ctrl = ramp(kf, n_close, n_squeeze, cp, cg, cs, xp=jnp)
            d = d.replace(ctrl=ctrl, xfrc_applied=d.xfrc_applied.at[obj, :3].set(jnp.where(on, push, zero)))
            pos = rp
            if mid >= 0:  # the palm (mocap): pregrasp -> grasp over the closing ramp, as the C loop
                pos = ramp(kf, n_close, n_squeeze, pp, rp, rp, xp=jnp)
                d = d.replace(mocap_pos=d.mocap_pos.at[mid].set(pos), mocap_quat=d.mocap_quat.at[mid].set(rq))
            # the model's root pose too: MJX 3.17 poses a mocap body's children from body_pos/body_quat
            # (its kinematics overrides only the mocap body itself with mocap_pos/mocap_quat)
            m = mx.tree_replace({"body_pos": mx.body_pos.at[root].set(pos), "body_quat": mx.body_quat.at[root].set(rq),
                                 "opt.gravity": jnp.where(on, grav, zero)})
            return mjx.step(m, d)

        def check(d, p0, q0):
            dist = jnp.linalg.norm(d.xipos[obj] - p0)
            dot = jnp.minimum(jnp.abs(jnp.dot(d.xquat[obj], q0)), 1.0)
            return dist, jnp.degrees(2.0 * jnp.arccos(dot)), jnp.all(jnp.isfinite(d.qpos))

        def body(state):
            d, k, wd, wr, alive, nc = state
            d = jax.vmap(step, in_axes=(0, None, 0, 0, 0, 0, 0, 0, 0, 0))(d, k, rp, rq, pp, cp, cg, cs, push, grav)
            j = k - pre + 1  # push steps done
            is_check = (j >= 1) & ((j % n_check == 0) | (j == n_push))
            dist, rot, finite = jax.vmap(check)(d, p0, q0)
            upd = alive & is_check
            wd = jnp.where(upd & (dist > wd), dist, wd)  # as Python's max(worst, dist): NaN keeps worst
            wr = jnp.where(upd & (rot > wr), rot, wr)
            fail = (dist >= cfg.max_translation) | (rot >= cfg.max_rotation_deg) | ~finite
            alive = alive & ~(is_check & fail)
            nc = jnp.maximum(nc, (d._impl.contact.dist < 0).sum(axis=-1, dtype=jnp.int32))
            return d, k + 1, wd, wr, alive, nc

        def cond(state):
            k, alive = state[1], state[4]
            return (k < total) & ((k < pre) | jnp.any(alive))

        d = jax.vmap(lambda q, c: self.d0.replace(qpos=q, ctrl=c))(qpos, cp)
        state = (d, jnp.int32(0), jnp.zeros(R, self.dtype), jnp.zeros(R, self.dtype), jnp.ones(R, bool),
                 jnp.zeros(R, jnp.int32))
        _, _, wd, wr, alive, nc = jax.lax.while_loop(cond, body, state)
        return wd, wr, alive, nc


def simulate_grasps_mjx(grasps: list[dict], config=None, *, hand=None, object_mesh=None, batch_size: int = 8,
                        progress=None) -> list:
    """Simulate grasps of one object and hand with :class:`MjxSimulator` (see the module docstring).

    Args:
        grasps: grasp dicts (``jaxgrasp.grasp/1`` or ``/2``) that share ``object.file``, its scale and
            centre of mass, and the hand.
        config: :class:`jaxgrasp.sim.protocol.SimConfig`.
        hand: a loaded hand to reuse (default: the grasps' ``hand.file``).
        object_mesh: the object mesh (default: read from ``object.file``).
        batch_size: grasps per compiled rollout call.
        progress: called with the number of grasps finished after each batch.

    Returns:
        :class:`jaxgrasp.sim.protocol.SimResult` per grasp, in order (``wall_s``: the batch's time
        shared equally, compilation included).
    """
    cfg = config or SimConfig()
    if not grasps:
        return []
    t0 = time.perf_counter()
    g0 = grasps[0]
    key = [(g["object"]["file"], g["object"].get("units_scale", 1.0), tuple(g["object"].get("center_of_mass", ())),
            g["hand"]["name"]) for g in grasps]
    if len(set(key)) != 1:
        raise ValueError("simulate_grasps_mjx: the grasps must share the object (file, scale, centre of mass) and hand")
    if hand is None:
        hand = load_hand(g0["hand"]["file"]) if Path(g0["hand"]["file"]).is_file() else load_hand(g0["hand"]["name"])
    mesh = object_mesh if object_mesh is not None else object_mesh_of(g0)
    qs = [joint_vector(hand, g["joint_angles"]) for g in grasps]
    palms = [np.asarray(g["palm_pose"]["matrix"], np.float64) for g in grasps]
    pieces = convex_pieces(mesh, threshold=cfg.coacd_threshold, max_pieces=cfg.max_pieces)
    com = np.asarray(g0["object"].get("center_of_mass", mesh.center_mass), np.float64)
    poses = [grasp_protocol_poses(g, build_scene(hand, pieces, T, com, cfg), hand, q, cfg)
             for g, T, q in zip(grasps, palms, qs)]  # C scenes (the file's poses, else derived)
    scene = build_mjx_scene(hand, pieces, palms[0], com, cfg)
    sim = MjxSimulator(scene, hand, cfg, batch_size=min(batch_size, len(grasps)))
    res = sim.run(palms, qs, [p["squeeze"] for p in poses], [p["pregrasp"] for p in poses], progress=progress,
                  palm_pregrasps=[p["pregrasp_palm"] for p in poses])
    wall = (time.perf_counter() - t0) / len(grasps)
    capped = sum(r["contacts_capped"] for r in res)
    if capped:
        warnings.warn(f"MJX: {capped} grasp(s) reached max_contact_points={sim.max_contacts} penetrating contacts "
                      "(deeper contacts beyond it were dropped); raise MAX_CONTACTS", stacklevel=2)
    out = []
    for g, r, p in zip(grasps, res, poses):
        pen = g.get("metrics", {}).get("penetration_mm")
        out.append(SimResult(success=bool(r["success"]), reason=r["reason"],
                             initial_penetration_mm=float(r["initial_penetration_mm"]),
                             self_penetration_mm=float(r["self_penetration_mm"]),
                             initial_contacts=int(r["initial_contacts"]), directions=tuple(r["directions"]),
                             num_pieces=scene.num_pieces, grasp_file=g.get("_source", ""),
                             object_file=str(g["object"]["file"]),
                             planner_penetration_mm=None if pen is None else float(pen), wall_s=wall,
                             hand=hand.name, squeeze_source=p["squeeze_source"],
                             max_normal_force_n=p["max_normal_force_n"]))
    return out

