"""Snakemake adapter for rule round_plots (activepam.rounds.steps.round_plots)."""

from activepam.rounds.steps import round_plots, run_rule

run_rule(round_plots, snakemake)
