"""Snakemake adapter for rule round_sample (activepam.rounds.steps.round_sample)."""

from activepam.rounds.steps import round_sample, run_rule

run_rule(round_sample, snakemake)
