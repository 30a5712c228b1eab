"""deeptag: tag images with Triton, search them in Elasticsearch."""

__version__ = "0.1.0"
