"""``python -m jaxgrasp.simulate``: grasps checked in MuJoCo (the command line :mod:`jaxgrasp.cli.simulate`)."""

import sys

from jaxgrasp.cli.simulate import main

if __name__ == "__main__":
    sys.exit(main())
