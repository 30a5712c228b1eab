"""Where rendered output goes: any HTTP endpoint (an Elasticsearch URL among them)."""
