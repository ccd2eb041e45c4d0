"""jaxgrasp.learning."""
