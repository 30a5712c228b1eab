"""Search backends: Elasticsearch in production, an embedded tantivy index on a laptop."""
