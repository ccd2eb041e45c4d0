"""Deprecated spelling of :mod:`jaxgrasp.planning.batch` (the module moved when the package was layered).

``import jaxgrasp.batch`` still works and warns; use jaxgrasp.plan_batch and jaxgrasp.grasp_diversity.
"""

import warnings

from jaxgrasp.planning.batch import grasp_diversity, plan_batch  # noqa: F401 (the old spelling's names)

warnings.warn("jaxgrasp.batch is deprecated: use jaxgrasp.plan_batch and jaxgrasp.grasp_diversity", DeprecationWarning, stacklevel=2)
