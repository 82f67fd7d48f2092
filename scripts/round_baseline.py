"""Snakemake adapter for rule rounds_baseline (activepam.rounds.steps.rounds_baseline)."""

from activepam.rounds.steps import rounds_baseline, run_rule

run_rule(rounds_baseline, snakemake)
