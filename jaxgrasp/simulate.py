"""``python -m jaxgrasp.simulate``: grasps checked in MuJoCo (the command line of :mod:`jaxgrasp.sim.simulate`)."""

import sys

from jaxgrasp.sim.simulate import main

if __name__ == "__main__":
    sys.exit(main())
