"""``python -m jaxgrasp.dataset``: dataset builds (the command line of :mod:`jaxgrasp.cli.dataset`)."""

import sys

from jaxgrasp.cli.dataset import main

if __name__ == "__main__":
    sys.exit(main())
