"""``python -m jaxgrasp.train``: the network's training (the command line of :mod:`jaxgrasp.learning.train`)."""

import sys

from jaxgrasp.learning.train import main

if __name__ == "__main__":
    sys.exit(main())
