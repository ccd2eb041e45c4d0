"""Render the bundled hands at a half-closed configuration (visual sanity check).

Usage (needs an OpenGL backend; EGL works headless)::

    MUJOCO_GL=egl python robots/render_hands.py --out /work/notes

Writes ``hands_<name>.png`` per hand: four views (palmar, side, back, oblique) with the
contact-candidate sites drawn as red arrows along their z-axis (the outward pad normal).
"""

import argparse
import os
from pathlib import Path

import mujoco
import numpy as np

ROBOTS = Path(__file__).resolve().parent

# Half-closed configurations (joint name -> angle in rad / slide in m). Coupled joints are
# set consistently with their equalities (Shadow J1 = J2, three-finger J3 = J2 / 3 and
# F2J1 = F1J1, parallel jaw finger2 = finger1).
POSES = {
    "shadow": {
        **{f"{f}J3": 0.6 for f in ("FF", "MF", "RF", "LF")},
        **{f"{f}J2": 0.6 for f in ("FF", "MF", "RF", "LF")},
        **{f"{f}J1": 0.6 for f in ("FF", "MF", "RF", "LF")},
        "FFJ4": -0.1, "RFJ4": -0.1, "LFJ4": -0.2, "LFJ5": 0.3,
        "THJ5": 0.5, "THJ4": 0.9, "THJ3": 0.0, "THJ2": 0.0, "THJ1": 0.3,
    },
    "threefinger": {
        "F1J1": 1.0472, "F2J1": 1.0472,
        **{f"F{k}J2": 1.3 for k in (1, 2, 3)},
        **{f"F{k}J3": 1.3 / 3 for k in (1, 2, 3)},
    },
    "parallel_jaw": {"finger_joint1": 0.025, "finger_joint2": 0.025},
}

# (azimuth, elevation) per view; the palm frames differ, see robots/README.md.
VIEWS = {
    "shadow": [(90, -10), (0, -10), (-90, -10), (130, -30)],
    "threefinger": [(90, -5), (0, -5), (90, -60), (140, -35)],
    "parallel_jaw": [(0, -5), (90, -5), (0, -60), (140, -35)],
}


def _add_site_arrows(model, data, scene, length=0.008):
    """Append one arrow per contact site (along its z-axis) to the scene."""
    for i in range(model.nsite):
        if not model.site(i).name.startswith("contact_"):
            continue
        if scene.ngeom >= scene.maxgeom:
            break
        p = data.site_xpos[i]
        n = data.site_xmat[i].reshape(3, 3)[:, 2]
        g = scene.geoms[scene.ngeom]
        mujoco.mjv_initGeom(g, mujoco.mjtGeom.mjGEOM_ARROW, np.zeros(3), np.zeros(3),
                            np.zeros(9), np.array([1, 0, 0, 1], np.float32))
        mujoco.mjv_connector(g, mujoco.mjtGeom.mjGEOM_ARROW, 0.0012, p, p + length * n)
        scene.ngeom += 1


def render(name, out_dir, size=480):
    model = mujoco.MjModel.from_xml_path(str(ROBOTS / name / f"{name}.xml"))
    data = mujoco.MjData(model)
    for jname, value in POSES[name].items():
        data.qpos[model.joint(jname).qposadr[0]] = value
    mujoco.mj_forward(model, data)
    renderer = mujoco.Renderer(model, size, size)
    opt = mujoco.MjvOption()
    opt.sitegroup[:] = 0
    cam = mujoco.MjvCamera()
    # frame the hand: box around the geoms' bounding spheres
    lo = (data.geom_xpos - model.geom_rbound[:, None]).min(axis=0)
    hi = (data.geom_xpos + model.geom_rbound[:, None]).max(axis=0)
    center, extent = 0.5 * (lo + hi), (hi - lo).max()
    tiles = []
    for azimuth, elevation in VIEWS[name]:
        cam.lookat[:] = center
        cam.distance = 1.5 * extent
        cam.azimuth, cam.elevation = azimuth, elevation
        renderer.update_scene(data, cam, opt)
        _add_site_arrows(model, data, renderer.scene)
        tiles.append(renderer.render())
    image = np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:], 1)], 0)
    path = Path(out_dir) / f"hands_{name}.png"
    import matplotlib.pyplot as plt

    plt.imsave(path, image)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/work/notes")
    parser.add_argument("--hands", nargs="*", default=list(POSES))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in args.hands:
        print(render(name, args.out))


if __name__ == "__main__":
    main()
