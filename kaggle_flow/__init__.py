"""flow: an image-classification competition from raw files to a checked submission."""

__version__ = "0.1.0"
