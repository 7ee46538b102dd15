"""fraudstream: fault-tolerant streaming fraud detection."""

__version__ = "0.1.0"
