"""Sampling engine: scores, strategies, diversification, strata allocation, designs."""
