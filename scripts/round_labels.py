"""Snakemake adapter for rule round_simulated_labels, demo (steps.round_simulated_labels)."""

from activepam.rounds.steps import round_simulated_labels, run_rule

run_rule(round_simulated_labels, snakemake)
