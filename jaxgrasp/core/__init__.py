"""jaxgrasp.core."""
