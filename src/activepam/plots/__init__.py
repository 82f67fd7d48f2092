"""Figures of the pipeline, one module per stage (detections, sampling, rounds, ...).

Plot functions take DataFrames and return a :class:`matplotlib.figure.Figure` built without
pyplot (no global state, any backend); save them with :func:`activepam.core.io.save_figure`.
"""
