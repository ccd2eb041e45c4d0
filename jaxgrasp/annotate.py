"""``python -m jaxgrasp.annotate``: a hand's contact candidates and samples (the command line of :mod:`jaxgrasp.hand.annotate`).

A hand file jaxgrasp cannot use ends the command with one line (``error: HandLoadError: ...``,
exit status 2), Ctrl-C with one line (status 130); see :func:`jaxgrasp.cli.common.run_cli`.
"""

import sys

from jaxgrasp.cli.common import library_messages_to, run_cli
from jaxgrasp.hand.annotate import main


def _main(argv=None):
    with library_messages_to(None):  # trimesh's sampling warnings are not the user's business
        return main(argv)


if __name__ == "__main__":
    sys.exit(run_cli(_main, prog="python -m jaxgrasp.annotate"))
