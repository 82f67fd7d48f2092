"""Snakemake adapter for rule rounds_label_set (activepam.rounds.steps.rounds_label_set)."""

from activepam.rounds.steps import rounds_label_set, run_rule

run_rule(rounds_label_set, snakemake)
