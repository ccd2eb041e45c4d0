"""jaxgrasp.cli."""
