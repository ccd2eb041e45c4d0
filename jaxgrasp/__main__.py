"""``python -m jaxgrasp``: a hand's structure and forward kinematics (:mod:`jaxgrasp.cli.hand_info`)."""

import sys

from jaxgrasp.cli.hand_info import main

if __name__ == "__main__":
    sys.exit(main())
