"""Model artefacts: export of the pretrained classifier and its label file."""
