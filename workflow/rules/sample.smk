# Sampling: one batch of units to annotate per strategy of sampling.run (activepam.sampling.engine),
# from the detections, embeddings and acoustic indices, plus its figures (sample vs pool
# composition, score distributions, embedding map).

import re

from activepam.sampling.files import workflow_inputs
from activepam.sampling.strategies import resolve_strategy

SAMPLING = config.get("sampling", {})
SAMPLE_RUN = list(SAMPLING.get("run", []))
# resolved (and validated) at parse time: a bad strategy fails before any job starts
SAMPLE_STRATEGIES = {name: resolve_strategy(name, config) for name in SAMPLE_RUN}
SAMPLE_WILDCARD = "|".join(re.escape(name) for name in SAMPLE_RUN) or "__none__"
SAMPLE_FIGURES = ["composition", "uncertainty", "embedding_map"]
SAMPLE_TARGETS = [
    f"{RESULTS}/sample/{name}/{item}"
    for name in SAMPLE_RUN
    for item in ["sample.csv", *[f"figures/{fig}.png" for fig in SAMPLE_FIGURES]]
]


rule sample:
    input:
        unpack(lambda wildcards: workflow_inputs(config, RESULTS)),
    output:
        sample=f"{RESULTS}/sample/{{strategy}}/sample.csv",
    log:
        f"{RESULTS}/logs/sample/{{strategy}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sample/{{strategy}}.tsv"
    wildcard_constraints:
        strategy=SAMPLE_WILDCARD,
    conda:
        CONDA_ENV
    params:
        strategy=lambda wildcards: SAMPLE_STRATEGIES[wildcards.strategy],
    script:
        "../../scripts/sample.py"


rule plots_sample:
    input:
        unpack(lambda wildcards: workflow_inputs(config, RESULTS)),
        sample=rules.sample.output.sample,
    output:
        composition=f"{RESULTS}/sample/{{strategy}}/figures/composition.png",
        uncertainty=f"{RESULTS}/sample/{{strategy}}/figures/uncertainty.png",
        embedding_map=f"{RESULTS}/sample/{{strategy}}/figures/embedding_map.png",
    log:
        f"{RESULTS}/logs/sample/{{strategy}}_plots.log",
    benchmark:
        f"{RESULTS}/benchmarks/sample/{{strategy}}_plots.tsv"
    wildcard_constraints:
        strategy=SAMPLE_WILDCARD,
    conda:
        CONDA_ENV
    params:
        strategy=lambda wildcards: SAMPLE_STRATEGIES[wildcards.strategy],
        map_points=SAMPLING.get("map_points", 5000),
    script:
        "../../scripts/plots_sample.py"
