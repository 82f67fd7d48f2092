"""Snakemake adapter for rules round_export and rounds_export_test (steps.round_export)."""

from activepam.rounds.steps import round_export, run_rule

run_rule(round_export, snakemake)
