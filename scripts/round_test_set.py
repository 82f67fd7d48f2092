"""Snakemake adapter for rule rounds_test_set (activepam.rounds.steps.rounds_test_set)."""

from activepam.rounds.steps import rounds_test_set, run_rule

run_rule(rounds_test_set, snakemake)
