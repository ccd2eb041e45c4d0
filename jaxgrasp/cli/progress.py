"""The planning command line's progress bar: log records as its status, and a clock that runs."""

from __future__ import annotations

import logging
import threading
import time


class BarLog(logging.Handler):
    """Log records on a tqdm bar: INFO and below as the bar's status (after the current object's
    name), warnings and errors as lines; with ``verbose`` every record also as a line stamped with
    the seconds since ``t0``. Thread-safe (the planner may log from background threads)."""

    def __init__(self, bar, *, verbose: bool, t0: float):
        super().__init__(logging.DEBUG if verbose else logging.INFO)
        self.bar, self.verbose, self.t0, self.prefix = bar, verbose, t0, ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            if record.levelno >= logging.WARNING:
                self.bar.write(f"{record.levelname.lower()}: {self.prefix}{msg}")
                return
            if self.verbose:
                self.bar.write(f"[{time.perf_counter() - self.t0:7.1f} s] {self.prefix}{msg}")
            self.bar.set_postfix_str(f"{self.prefix}{msg}")
        except Exception:  # never let a progress message break planning
            self.handleError(record)


class Ticker:
    """Redraws the bar every ``every`` seconds (on a terminal), so its clock runs while one long
    step (a compilation, an evaluation) gives no update."""

    def __init__(self, bar, every: float = 1.0):
        self.bar, self.every, self.stop = bar, every, threading.Event()
        self.thread = None
        fp = getattr(bar, "fp", None)
        try:
            tty = bool(fp is not None and fp.isatty())
        except (AttributeError, ValueError, OSError):
            tty = False
        if tty and not getattr(bar, "disable", False):
            self.thread = threading.Thread(target=self._run, name="jaxgrasp-plan-ticker", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.bar.refresh()
            except Exception:  # the bar was closed
                return

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
