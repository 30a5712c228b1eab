"""The orchestrator's HTTP endpoint: DeepDetect-compatible /predict, search, metrics, web page."""
