"""Deprecated spelling of :mod:`jaxgrasp.mesh.render` (the module moved when the package was layered).

``import jaxgrasp.render`` still works and warns; use jaxgrasp.mesh.render (pictures: jaxgrasp.hand.pictures).
"""

import warnings

from jaxgrasp.mesh.render import (  # noqa: F401 (the old spelling's names)
    Camera,
    camera_rays,
    default_cameras,
    intrinsics,
    look_at,
    render_depth,
    render_views,
)

warnings.warn("jaxgrasp.render is deprecated: use jaxgrasp.mesh.render (pictures: jaxgrasp.hand.pictures)", DeprecationWarning, stacklevel=2)
