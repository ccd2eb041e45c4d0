"""jaxgrasp.mesh."""
