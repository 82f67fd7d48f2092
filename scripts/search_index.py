"""Snakemake adapter for ``rule search_index`` (activepam.search.steps.search_index)."""

from activepam.core.logs import rule_log
from activepam.search.steps import search_index

with rule_log(snakemake.log[0]):
    search_index(snakemake.input.embeddings, dtype=snakemake.params.dtype)
