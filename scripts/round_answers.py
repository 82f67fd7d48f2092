"""Snakemake adapter for rule round_answers (activepam.rounds.steps.round_answers)."""

from activepam.rounds.steps import round_answers, run_rule

run_rule(round_answers, snakemake)
