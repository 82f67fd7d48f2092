"""Snakemake adapter for ``rule generate_demo`` (activepam.demo.steps.generate_demo)."""

from activepam.core.logs import rule_log
from activepam.demo.steps import generate_demo

with rule_log(snakemake.log[0]):
    generate_demo(snakemake.output, snakemake.params.demo, threads=snakemake.threads)
