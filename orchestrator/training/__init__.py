"""Dedicated classifiers in seconds: a linear probe on the image model's embeddings.

folder (one sub-folder per category) → embeddings through Triton (cached by SHA-256)
→ logistic regression → ONNX head in ``model_repository/<name>_head/<version>/`` → a Triton
ensemble ``<name>`` (image → backbone → head) served next to the other models.
"""
