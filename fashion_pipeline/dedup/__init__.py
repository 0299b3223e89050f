"""Cross-brand deduplication: exact (sha256) and near-duplicate (64-bit pHash) merging."""
