"""Snakemake adapter for rule round_train (activepam.rounds.steps.round_train)."""

from activepam.rounds.steps import round_train, run_rule

run_rule(round_train, snakemake)
