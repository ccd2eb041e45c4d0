"""jaxgrasp.hand.model."""
