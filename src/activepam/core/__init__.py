"""Shared core under every stage: io, config, logs, hashing, strata, uncertainty, evaluation
metrics, the embedding store."""
