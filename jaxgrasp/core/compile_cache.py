"""JAX's persistent compilation cache, on by default for the library and the command-line tools.

``import jaxgrasp`` calls :func:`enable_compilation_cache`, so compiled XLA executables are
stored on disk and a second process with the same shapes loads them instead of compiling again.

Where the cache lives (first that applies):

* ``JAXGRASP_CACHE_DIR=PATH``: that folder; ``JAXGRASP_CACHE_DIR=off`` (or ``0``, ``false``,
  ``no``, or empty) turns the cache off;
* a cache folder the user already gave JAX (``JAX_COMPILATION_CACHE_DIR`` or
  ``jax.config.update("jax_compilation_cache_dir", ...)`` before ``import jaxgrasp``) is kept;
* ``$JAXGRASP_CACHE/xla`` when ``JAXGRASP_CACHE`` (jaxgrasp's cache root, also used for the
  simulation's convex decompositions) is set;
* ``$XDG_CACHE_HOME/jaxgrasp/xla``, else ``~/.cache/jaxgrasp/xla``.

A folder that cannot be created or written is reported once (``logging.getLogger("jaxgrasp")``,
a warning) and the process runs without the cache. The folder only grows (no eviction: JAX's
size cap would scan the folder on every write): planning one object adds ~210 entries, ~2.5 MB,
per code version and set of shapes; delete the folder to reclaim the space. As JAX warns, the
cache is trusted code: do not point it at a folder others can write to.

Executables that take host callbacks (the exact distance fix-up's ``jax.pure_callback``) are
never written by JAX, whatever the settings.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

ENV_VAR = "JAXGRASP_CACHE_DIR"
_OFF = {"", "0", "off", "false", "no", "none"}

# Cache every executable, however quick to compile. Measured on CPU, jax 0.10.2, one plan of a
# 16k-face scan (215 compilations, 47 s of compiling in a fresh process): with JAX's default (only
# executables that took >= 1 s) 6 entries were written and the second run still compiled for 13 s
# (34 s wall); with 0, 211 entries (2.4 MB) were written, 213 hit, and the second run compiled for
# 7 s, 5 of them the two executables with host callbacks that JAX never stores (28 s wall). An
# entry reads back in a few ms.
MIN_COMPILE_TIME_S = 0.0
MIN_ENTRY_SIZE_BYTES = 0

log = logging.getLogger("jaxgrasp")

_state: dict = {"done": False, "path": None}


def cache_root() -> Path:
    """jaxgrasp's folder in the user's cache: ``$JAXGRASP_CACHE``, else
    ``$XDG_CACHE_HOME/jaxgrasp``, else ``~/.cache/jaxgrasp`` (the only place outside an output
    folder that the library and the command lines write to)."""
    root = os.environ.get("JAXGRASP_CACHE")
    if root:
        return Path(os.path.expanduser(root))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jaxgrasp"


def default_cache_dir() -> Path:
    """``$JAXGRASP_CACHE/xla``, else ``$XDG_CACHE_HOME/jaxgrasp/xla``, else ``~/.cache/jaxgrasp/xla``."""
    return cache_root() / "xla"


def _writable(path: Path) -> str | None:
    """None if ``path`` can be created and written, else why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    return None


def enable_compilation_cache(path: str | os.PathLike | None = None) -> str | None:
    """Turn on JAX's persistent compilation cache; returns the folder in use (None: off).

    Args:
        path: the folder; None chooses as the module docstring says (``JAXGRASP_CACHE_DIR``, the
            user's own JAX setting, the user's cache folder). An explicit path wins over all of
            them.

    Safe to call more than once; only the first call with ``path=None`` decides, later ones return
    its answer. Must run before the first compilation to cover it (``import jaxgrasp`` does).
    """
    import jax

    if path is None and _state["done"]:
        return _state["path"]
    if path is None:
        env = os.environ.get(ENV_VAR)
        if env is not None and env.strip().lower() in _OFF:
            _state.update(done=True, path=None)
            log.debug("compilation cache off (%s=%r)", ENV_VAR, env)
            return None
        if env is None:
            user = jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR")
            if user:  # the user's own setting: leave it (and its thresholds) alone
                _state.update(done=True, path=str(user))
                return str(user)
        target = Path(os.path.expanduser(env)) if env is not None else default_cache_dir()
    else:
        target = Path(os.path.expanduser(str(path)))
    problem = _writable(target)
    if problem is not None:
        log.warning("compilation cache disabled: cannot write to %s (%s); set %s to another folder "
                    "or to 'off'", target, problem, ENV_VAR)
        _state.update(done=True, path=None)
        return None
    jax.config.update("jax_compilation_cache_dir", str(target))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", MIN_ENTRY_SIZE_BYTES)
    _state.update(done=True, path=str(target))
    log.debug("compilation cache at %s", target)
    return str(target)
