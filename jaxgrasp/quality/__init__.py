"""jaxgrasp.quality.q1."""
