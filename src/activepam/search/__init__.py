"""Similarity search over the embedding store (exact streamed top-N, usearch index)."""
