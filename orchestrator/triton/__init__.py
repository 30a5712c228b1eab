"""Everything that talks to, or runs, NVIDIA Triton Inference Server."""
