"""Simulation and analysis track: oracle loops, divergence, published protocols."""
