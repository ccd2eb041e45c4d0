"""Deprecated spelling of :mod:`jaxgrasp.learning.data` (the module moved when the package was layered).

``import jaxgrasp.data`` still works and warns; use jaxgrasp.learning.data.
"""

import warnings

from jaxgrasp.learning.data import (  # noqa: F401 (the old spelling's names)
    build_dataset,
    load_manifest,
    load_object_meshes,
    load_split,
    read_mesh,
)

warnings.warn("jaxgrasp.data is deprecated: use jaxgrasp.learning.data", DeprecationWarning, stacklevel=2)
