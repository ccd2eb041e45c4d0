"""jaxgrasp.planning."""
