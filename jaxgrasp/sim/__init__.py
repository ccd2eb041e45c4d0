"""jaxgrasp.sim."""
