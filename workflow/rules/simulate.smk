# Simulation mode: pool-based active learning with an oracle (activepam.simulation.loop), fanned out
# as strategy x replicate-seed jobs (a replicate varies the data subsample, the test split and
# the active learner), then gathered into results/simulation/results.parquet with learning
# curves, AULC, listening time to target and per-stratum spread on the listening-seconds axis;
# stratified-generalisation analyses (activepam.simulation.stratified) on the demo's BirdNET embeddings and on
# a synthetic divergence sweep drawn from the generator's community model (activepam.simulation.synthetic);
# rule simulation_table prints the README strategy table (strategy_table.md).

from activepam.simulation.workflow import (
    rule_params,
    simulation_params,
    workflow_dataset_inputs,
    workflow_targets,
)

SIM = f"{RESULTS}/simulation"
# the simulation section with context_s resolved (null = rounds.context_s); each rule's params
# take only the keys it reads (rule_params, activepam.simulation.workflow.RULE_KEYS), so that
# changing one key reruns only the rules using it
SIMULATION = simulation_params(config)
SIM_STRATEGIES = SIMULATION.get("strategies", [])
SIM_SEEDS = SIMULATION.get("seeds", [])
SIM_DIVERGENCE = SIMULATION.get("divergence", {})
SIM_TURNOVERS = [f"{float(t):g}" for t in SIM_DIVERGENCE.get("turnovers", [])]
SIM_DEMO_SEEDS = SIM_DIVERGENCE.get("seeds", [])


SIM_TARGETS = workflow_targets(config, RESULTS)


rule simulation_dataset:
    input:
        unpack(lambda wildcards: workflow_dataset_inputs(config, RESULTS)),
    output:
        dataset=f"{SIM}/dataset.parquet",
    log:
        f"{RESULTS}/logs/simulation/dataset.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulation/dataset.tsv"
    conda:
        CONDA_ENV
    params:
        simulation=rule_params(config, "dataset"),
    script:
        "../../scripts/simulate_dataset.py"


rule simulation_full:
    input:
        dataset=rules.simulation_dataset.output.dataset,
    output:
        full=f"{SIM}/full_supervision.parquet",
    log:
        f"{RESULTS}/logs/simulation/full_supervision.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulation/full_supervision.tsv"
    conda:
        CONDA_ENV
    params:
        simulation=rule_params(config, "full"),
    script:
        "../../scripts/simulate_full.py"


rule simulation_run:
    input:
        dataset=rules.simulation_dataset.output.dataset,
    output:
        run=f"{SIM}/runs/{{strategy}}/{{seed}}.parquet",
    log:
        f"{RESULTS}/logs/simulation/runs/{{strategy}}/{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulation/runs/{{strategy}}/{{seed}}.tsv"
    wildcard_constraints:
        strategy=r"[A-Za-z0-9_]+",
        seed=r"\d+",
    conda:
        CONDA_ENV
    params:
        simulation=rule_params(config, "run"),
        sampling={
            "strategies": lookup(
                dpath="sampling/strategies", within=config, default={}
            )
        },
    script:
        "../../scripts/simulate_run.py"


rule simulation_gather:
    input:
        runs=expand(
            f"{SIM}/runs/{{strategy}}/{{seed}}.parquet",
            strategy=SIM_STRATEGIES,
            seed=SIM_SEEDS,
        ),
        full=rules.simulation_full.output.full,
    output:
        results=f"{SIM}/results.parquet",
        results_csv=f"{SIM}/results.csv",
        per_run=f"{SIM}/per_run.csv",
        summary=f"{SIM}/summary.csv",
        claims=f"{SIM}/claims.json",
    log:
        f"{RESULTS}/logs/simulation/gather.log",
    conda:
        CONDA_ENV
    params:
        simulation=rule_params(config, "gather"),
    script:
        "../../scripts/simulate_gather.py"


rule simulation_figures:
    input:
        results=rules.simulation_gather.output.results,
        per_run=rules.simulation_gather.output.per_run,
        summary=rules.simulation_gather.output.summary,
        claims=rules.simulation_gather.output.claims,
    output:
        learning_curves=report(
            f"{SIM}/figures/learning_curves.png",
            caption="../report/simulation_learning_curves.rst",
            category="Simulation",
            subcategory="Strategy comparison",
        ),
        aulc=report(
            f"{SIM}/figures/aulc.png",
            caption="../report/simulation_aulc.rst",
            category="Simulation",
            subcategory="Strategy comparison",
        ),
        to_target=report(
            f"{SIM}/figures/labels_to_target.png",
            caption="../report/simulation_to_target.rst",
            category="Simulation",
            subcategory="Strategy comparison",
        ),
        per_stratum=report(
            f"{SIM}/figures/per_stratum.png",
            caption="../report/simulation_per_stratum.rst",
            category="Simulation",
            subcategory="Strategy comparison",
        ),
    log:
        f"{RESULTS}/logs/simulation/figures.log",
    conda:
        CONDA_ENV
    params:
        simulation=rule_params(config, "figures"),
    script:
        "../../scripts/simulate_figures.py"


rule simulation_stratified:
    input:
        dataset=rules.simulation_dataset.output.dataset,
    output:
        loso=f"{SIM}/stratified/loso.parquet",
        mi=f"{SIM}/stratified/mi.parquet",
        jsd=f"{SIM}/stratified/jsd.parquet",
        loso_fig=report(
            f"{SIM}/figures/stratified_loso.png",
            caption="../report/simulation_stratified_loso.rst",
            category="Simulation",
            subcategory="Stratified generalisation (demo)",
        ),
        mi_fig=report(
            f"{SIM}/figures/stratified_mi.png",
            caption="../report/simulation_stratified_mi.rst",
            category="Simulation",
            subcategory="Stratified generalisation (demo)",
        ),
        jsd_fig=report(
            f"{SIM}/figures/stratified_jsd.png",
            caption="../report/simulation_stratified_jsd.rst",
            category="Simulation",
            subcategory="Stratified generalisation (demo)",
        ),
    log:
        f"{RESULTS}/logs/simulation/stratified.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulation/stratified.tsv"
    conda:
        CONDA_ENV
    params:
        simulation=rule_params(config, "stratified"),
        source="dataset",
    script:
        "../../scripts/simulate_stratified.py"


rule simulation_divergence_setting:
    output:
        loso=f"{SIM}/divergence/turnover_{{turnover}}/seed_{{dseed}}/loso.parquet",
        mi=f"{SIM}/divergence/turnover_{{turnover}}/seed_{{dseed}}/mi.parquet",
        jsd=f"{SIM}/divergence/turnover_{{turnover}}/seed_{{dseed}}/jsd.parquet",
    log:
        f"{RESULTS}/logs/simulation/divergence/turnover_{{turnover}}_seed_{{dseed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulation/divergence/turnover_{{turnover}}_seed_{{dseed}}.tsv"
    wildcard_constraints:
        turnover=r"[0-9.]+",
        dseed=r"\d+",
    conda:
        CONDA_ENV
    params:
        simulation=rule_params(config, "divergence_setting"),
        demo=config["demo"],
        source="synthetic",
    script:
        "../../scripts/simulate_stratified.py"


rule simulation_divergence:
    input:
        loso=expand(
            f"{SIM}/divergence/turnover_{{turnover}}/seed_{{dseed}}/loso.parquet",
            turnover=SIM_TURNOVERS,
            dseed=SIM_DEMO_SEEDS,
        ),
        mi=expand(
            f"{SIM}/divergence/turnover_{{turnover}}/seed_{{dseed}}/mi.parquet",
            turnover=SIM_TURNOVERS,
            dseed=SIM_DEMO_SEEDS,
        ),
    output:
        loso=f"{SIM}/divergence/loso.parquet",
        mi=f"{SIM}/divergence/mi.parquet",
        summary=f"{SIM}/divergence/summary.json",
        loso_fig=report(
            f"{SIM}/figures/divergence_loso.png",
            caption="../report/simulation_divergence_loso.rst",
            category="Simulation",
            subcategory="Divergence sweep (synthetic)",
        ),
        mi_fig=report(
            f"{SIM}/figures/divergence_mi.png",
            caption="../report/simulation_divergence_mi.rst",
            category="Simulation",
            subcategory="Divergence sweep (synthetic)",
        ),
    log:
        f"{RESULTS}/logs/simulation/divergence.log",
    conda:
        CONDA_ENV
    script:
        "../../scripts/simulate_divergence.py"


rule simulation_table:
    input:
        claims=rules.simulation_gather.output.claims,
        divergence=rules.simulation_divergence.output.summary,
    output:
        table=f"{SIM}/strategy_table.md",
    log:
        f"{RESULTS}/logs/simulation/table.log",
    conda:
        CONDA_ENV
    script:
        "../../scripts/simulate_table.py"
