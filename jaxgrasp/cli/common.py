"""What the command lines share: one-line errors, Ctrl-C, and library messages kept off the console.

A user's mistake (a missing file, a bad mesh, a hand file jaxgrasp cannot use) ends a command with
one line, ``error: <exception type>: <what to change>``, and exit status 2; Ctrl-C ends it with
one line and status 130. Other exceptions (bugs) keep their traceback. While a command runs,
third-party log records and Python warnings (trimesh's "only got N/M samples!", deprecation
notices) go to a log file in the output folder, or nowhere, never to the console.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from pathlib import Path
from typing import Callable

# Exceptions that mean "the input or the command line is wrong": HandLoadError is a ValueError,
# FileNotFoundError and PermissionError are OSErrors.
USER_ERRORS = (ValueError, OSError)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def error_line(err: BaseException) -> str:
    """``"<type>: <message>"`` on one line (newlines and runs of spaces collapsed)."""
    msg = " ".join(str(err).split())
    return f"{type(err).__name__}: {msg}" if msg else type(err).__name__


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None, *,
            prog: str) -> int:
    """Runs a command line's ``main(argv)`` and turns user errors and Ctrl-C into one line.

    Args:
        main: the command's main function; returns the exit status (None: 0).
        argv: its arguments (None: ``sys.argv[1:]``).
        prog: the command's name, the prefix of the lines printed.

    Returns:
        The exit status: main's, 2 after a user error, 130 after Ctrl-C.
    """
    try:
        status = main(argv)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as e:
        print(f"{prog}: error: {error_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK if status is None else int(status)


class LogFile(logging.Handler):
    """A log handler that keeps records in memory until :meth:`open` names its file (the output
    folder is created only once the inputs are known to be usable), then appends them there."""

    def __init__(self, level: int = logging.DEBUG):
        super().__init__(level)
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        self.buffer: list[logging.LogRecord] = []
        self.stream = None

    def open(self, path: str | Path) -> None:
        """Starts writing to ``path`` (appending), beginning with the records kept so far."""
        self.acquire()
        try:
            self.stream = open(path, "a", encoding="utf-8")
            for record in self.buffer:
                self.stream.write(self.format(record) + "\n")
            self.buffer.clear()
            self.stream.flush()
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.stream is None:
                if len(self.buffer) < 10_000:
                    self.buffer.append(record)
                return
            self.stream.write(self.format(record) + "\n")
            self.stream.flush()
        except Exception:  # a log line must never break a run
            self.handleError(record)

    def close(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
                self.stream = None
        finally:
            self.release()
        super().close()


@contextlib.contextmanager
def library_messages_to(handler: logging.Handler | None = None):
    """Sends the root logger's records (third-party libraries: trimesh, absl, JAX) and Python
    warnings to ``handler`` (None: nowhere) instead of the console, for the duration.

    The ``jaxgrasp`` logger is left to the caller (its own handlers decide what reaches the
    console; with ``propagate`` on its records also reach ``handler``).
    """
    handler = handler if handler is not None else logging.NullHandler()
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [handler]
    with warnings.catch_warnings():
        logging.captureWarnings(True)
        try:
            yield handler
        finally:
            logging.captureWarnings(False)
            root.handlers = saved
