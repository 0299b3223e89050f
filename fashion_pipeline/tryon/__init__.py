"""Virtual try-on: paired data (synthetic with ground truth, or a real set in the VITON-HD layout), metrics, baselines."""
