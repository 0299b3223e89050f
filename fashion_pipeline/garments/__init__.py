"""Garment segmentation (GrabCut), textile-pattern patches, pattern DCGANs and restyled garments."""
