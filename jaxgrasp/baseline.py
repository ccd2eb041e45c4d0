"""Deprecated spelling of :mod:`jaxgrasp.planning.baseline` (the module moved when the package was layered).

``import jaxgrasp.baseline`` still works and warns; use jaxgrasp.planning.baseline.
"""

import warnings

from jaxgrasp.planning.baseline import AnnealConfig, anneal, anneal_grasps  # noqa: F401 (the old spelling's names)

warnings.warn("jaxgrasp.baseline is deprecated: use jaxgrasp.planning.baseline", DeprecationWarning, stacklevel=2)
