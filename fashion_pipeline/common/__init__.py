"""Helpers shared by every stage: atomic file writes, the data root, metadata rendering."""
