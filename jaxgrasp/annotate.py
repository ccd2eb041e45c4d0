"""``python -m jaxgrasp.annotate``: a hand's contact candidates and samples (the command line of :mod:`jaxgrasp.hand.annotate`)."""

import sys

from jaxgrasp.hand.annotate import main

if __name__ == "__main__":
    sys.exit(main())
