"""Snakemake adapter for rule round_evaluate (activepam.rounds.steps.round_evaluate)."""

from activepam.rounds.steps import round_evaluate, run_rule

run_rule(round_evaluate, snakemake)
