"""DeepFashion: list-file parser, COCO converter and the synthetic sample generator."""
