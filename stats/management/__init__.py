"""Management commands of the analytics."""
