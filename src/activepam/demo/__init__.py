"""Demo data: the seeded generator of the synthetic monitoring network."""
