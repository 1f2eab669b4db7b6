"""REST API for care notes."""
