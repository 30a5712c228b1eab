"""deeptag: tag images with Triton, search them in Elasticsearch."""
