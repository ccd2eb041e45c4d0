"""``python -m jaxgrasp.evaluate``: the learned predictor on the test split (the command line of :mod:`jaxgrasp.learning.evaluate`)."""

import sys

from jaxgrasp.learning.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
