# Active-learning rounds (activepam.rounds; one step function per rule in
# activepam.rounds.steps): for every round RR of rounds.plan
#   sample (excluding labelled units + test set) -> export clips/Raven tables -> labels
#   -> train on rounds 00..RR + re-score all segments -> evaluate on the test set -> figures.
# Labels live in rounds.labels_dir (DVC-tracked). With rounds.simulated_annotator (demo) the
# oracle fills the exported Raven tables and the same importer writes them; otherwise
# <labels_dir>/round_RR.csv comes from `activepam labels import` and is a source file here:
# `make run` stops after exporting the first round without labels (see onsuccess, Snakefile).
# Rules take only the keys they use. A round's settings are frozen when it is exported
# (data/rounds/round_RR.settings.json); a round labelled by experts is locked: no rule
# produces its sample or annotation set (activepam.rounds.freeze; `activepam rounds unfreeze`).
from activepam.rounds.answers import ANSWER_OUTPUTS
from activepam.rounds.freeze import (
    check_locked,
    drift_warnings,
    forcerun_rules,
    pending_message,
    round_states,
    settings_path,
)
from activepam.rounds.rounds import (
    final_targets,
    label_files,
    metrics_files,
    predictions_path,
    round_files,
    round_plan,
    scores_path,
    waiting_targets,
)
from activepam.rounds.steps import export_params, sample_params, testset_params

ROUND_IDS = round_plan(config)  # validates rounds.plan before any work
LABELS_DIR = config["rounds"]["labels_dir"]
RD = f"{RESULTS}/rounds"
ROUND_STATES = round_states(config, SIMULATED)
# refuse before any work when a labelled round would be regenerated or misses its files
check_locked(ROUND_STATES, forcerun=forcerun_rules(sys.argv[1:]))
for _line in drift_warnings(config, ROUND_STATES, LABEL_SET):
    print(f"activepam: {_line}", file=sys.stderr)
# rounds whose sample/export rules exist: every round but the locked ones
OPEN_ROUNDS = [r for r in ROUND_IDS if not ROUND_STATES[r].locked]
OPEN_RE = "|".join(OPEN_ROUNDS) or "(?!)"
ROUND_TARGETS = (
    final_targets(config)
    if SIMULATED
    else waiting_targets(config, {k: s.labelled for k, s in ROUND_STATES.items()})
)


wildcard_constraints:
    r=r"\d{2}",
    name=r"round_\d{2}|test",


rule rounds_label_set:
    # without the demo and rounds.label_set: the species expected at the sites
    input:
        inventory=f"{RESULTS}/inventory/inventory.parquet",
        predictions=f"{RESULTS}/detect/predictions.parquet",
    output:
        label_set=f"{RD}/label_set.csv",
    log:
        f"{RESULTS}/logs/rounds/label_set.log",
    conda:
        CONDA_ENV
    params:
        species_filter=lookup(dpath="detect/species_filter", within=config),
        species_list=lookup(dpath="detect/species_list", within=config, default=""),
        location_threshold=lookup(
            dpath="detect/location_threshold", within=config, default=0.03
        ),
    script:
        "../../scripts/round_label_set.py"


if not ROUND_STATES["test"].locked:

    rule rounds_test_set:
        input:
            segments=f"{RESULTS}/detect/segments.parquet",
        output:
            test_set=f"{RD}/test_set.csv",
        log:
            f"{RESULTS}/logs/rounds/test_set.log",
        conda:
            CONDA_ENV
        params:
            settings=lambda wildcards: testset_params(config),
        script:
            "../../scripts/round_test_set.py"

    rule rounds_export_test:
        input:
            units=f"{RD}/test_set.csv",
            predictions=f"{RESULTS}/detect/predictions.parquet",
            label_set=lambda wildcards: export_params(config, "test", LABEL_SET)[
                "label_set"
            ],
        output:
            annotation=directory(f"{RD}/test/annotation"),
        log:
            f"{RESULTS}/logs/rounds/test_export.log",
        benchmark:
            f"{RESULTS}/benchmarks/rounds/test_export.tsv"
        conda:
            CONDA_ENV
        params:
            settings=lambda wildcards: export_params(config, "test", LABEL_SET),
            settings_file=str(settings_path("test")),
        script:
            "../../scripts/round_export.py"


rule round_sample:
    input:
        scores=lambda wildcards: scores_path(wildcards.r),
        labels=lambda wildcards: label_files(LABELS_DIR, wildcards.r, inclusive=False),
        test_set=f"{RD}/test_set.csv",
        embeddings=f"{RESULTS}/detect/embeddings.parquet",
        predictions=lambda wildcards: predictions_path(wildcards.r),
    output:
        sample=f"{RD}/round_{{r}}/sample.parquet",
    log:
        f"{RESULTS}/logs/rounds/round_{{r}}/sample.log",
    benchmark:
        f"{RESULTS}/benchmarks/rounds/round_{{r}}/sample.tsv"
    wildcard_constraints:
        r=OPEN_RE,
    conda:
        CONDA_ENV
    params:
        settings=lambda wildcards: sample_params(config, wildcards.r),
    script:
        "../../scripts/round_sample.py"


rule round_export:
    input:
        units=f"{RD}/round_{{r}}/sample.parquet",
        predictions=lambda wildcards: predictions_path(wildcards.r),
        label_set=lambda wildcards: export_params(config, wildcards.r, LABEL_SET)[
            "label_set"
        ],
    output:
        annotation=directory(f"{RD}/round_{{r}}/annotation"),
    log:
        f"{RESULTS}/logs/rounds/round_{{r}}/export.log",
    benchmark:
        f"{RESULTS}/benchmarks/rounds/round_{{r}}/export.tsv"
    wildcard_constraints:
        r=OPEN_RE,
    conda:
        CONDA_ENV
    params:
        settings=lambda wildcards: export_params(config, wildcards.r, LABEL_SET),
        settings_file=lambda wildcards: str(settings_path(wildcards.r)),
    script:
        "../../scripts/round_export.py"


if SIMULATED:

    rule round_simulated_labels:
        input:
            annotation=f"{RD}/{{name}}/annotation",
            events=f"{RAW_DIR}/events.parquet",
            inventory=f"{RESULTS}/inventory/inventory.parquet",
            label_set=LABEL_SET,
        output:
            completed=directory(f"{RD}/{{name}}/simulated"),
            labels=f"{LABELS_DIR}/{{name}}.csv",
        log:
            f"{RESULTS}/logs/rounds/{{name}}/labels.log",
        conda:
            CONDA_ENV
        params:
            round_id=lambda wildcards: wildcards.name.removeprefix("round_"),
            unsure=lookup(dpath="rounds/simulated_unsure", within=config, default=0.0),
            seed=lookup(dpath="rounds/seed", within=config),
        script:
            "../../scripts/round_labels.py"


rule round_train:
    input:
        labels=lambda wildcards: label_files(LABELS_DIR, wildcards.r),
        segments=f"{RESULTS}/detect/segments.parquet",
        embeddings=f"{RESULTS}/detect/embeddings.parquet",
        predictions=f"{RESULTS}/detect/predictions.parquet",
        label_set=LABEL_SET,
    output:
        model=f"{RD}/round_{{r}}/model.joblib",
        sidecar=f"{RD}/round_{{r}}/model.json",
        scored=f"{RD}/round_{{r}}/segments_scored.parquet",
        round_predictions=f"{RD}/round_{{r}}/predictions.parquet",
    log:
        f"{RESULTS}/logs/rounds/round_{{r}}/train.log",
    benchmark:
        f"{RESULTS}/benchmarks/rounds/round_{{r}}/train.tsv"
    conda:
        CONDA_ENV
    params:
        round_id=lambda wildcards: wildcards.r,
        train={
            key: lookup(dpath=f"train/{key}", within=config)
            for key in ("C", "max_iter", "calibrate_min", "cv_folds", "seed")
        },
        default_threshold=lookup(dpath="evaluate/default_threshold", within=config),
        top_k=lookup(dpath="detect/top_k", within=config),
    script:
        "../../scripts/round_train.py"


# the evaluation keys the metrics use (ECE bins, fallback threshold, stopping rule)
EVALUATE_KEYS = {
    "ece_bins": lookup(dpath="evaluate/ece_bins", within=config),
    "default_threshold": lookup(dpath="evaluate/default_threshold", within=config),
}


rule rounds_baseline:
    input:
        test_set=f"{RD}/test_set.csv",
        test_labels=f"{LABELS_DIR}/test.csv",
        embeddings=f"{RESULTS}/detect/embeddings.parquet",
        predictions=f"{RESULTS}/detect/predictions.parquet",
        label_set=LABEL_SET,
    output:
        metrics=f"{RD}/baseline_metrics.json",
        strata=f"{RD}/baseline_strata_metrics.json",
        species=f"{RD}/baseline_per_species.csv",
        confusion=f"{RD}/baseline_confusion.csv",
    log:
        f"{RESULTS}/logs/rounds/baseline.log",
    conda:
        CONDA_ENV
    params:
        evaluate=EVALUATE_KEYS,
        strata_keys=lookup(dpath="rounds/strata", within=config),
    script:
        "../../scripts/round_baseline.py"


rule round_evaluate:
    input:
        model=f"{RD}/round_{{r}}/model.joblib",
        sidecar=f"{RD}/round_{{r}}/model.json",
        labels=f"{LABELS_DIR}/round_{{r}}.csv",
        segments=f"{RESULTS}/detect/segments.parquet",
        baseline=f"{RD}/baseline_metrics.json",
        test_set=f"{RD}/test_set.csv",
        test_labels=f"{LABELS_DIR}/test.csv",
        embeddings=f"{RESULTS}/detect/embeddings.parquet",
        predictions=f"{RESULTS}/detect/predictions.parquet",
        label_set=LABEL_SET,
        # the stopping rule compares rounds 00..RR on a fixed stop set
        round_predictions=lambda wildcards: round_files(
            wildcards.r, "predictions.parquet"
        ),
        sidecars=lambda wildcards: round_files(wildcards.r, "model.json"),
        previous_metrics=lambda wildcards: metrics_files(wildcards.r)[:-1],
    output:
        metrics=f"{RD}/round_{{r}}/metrics.json",
        strata=f"{RD}/round_{{r}}/strata_metrics.json",
        species=f"{RD}/round_{{r}}/per_species.csv",
        confusion=f"{RD}/round_{{r}}/confusion.csv",
    log:
        f"{RESULTS}/logs/rounds/round_{{r}}/evaluate.log",
    conda:
        CONDA_ENV
    params:
        round_id=lambda wildcards: wildcards.r,
        evaluate={
            **EVALUATE_KEYS,
            "stopping": lookup(dpath="evaluate/stopping", within=config, default={}),
        },
        strata_keys=lookup(dpath="rounds/strata", within=config),
        seed=lookup(dpath="rounds/seed", within=config),
    script:
        "../../scripts/round_evaluate.py"


rule round_answers:
    # from labels to answers: thresholds for a target precision, call density, figures
    input:
        labels=lambda wildcards: label_files(LABELS_DIR, wildcards.r),
        detector_predictions=f"{RESULTS}/detect/predictions.parquet",
        sample_predictions=lambda wildcards: predictions_path(wildcards.r),
        round_predictions=f"{RD}/round_{{r}}/predictions.parquet",
        segments=f"{RESULTS}/detect/segments.parquet",
        sample=f"{RD}/round_{{r}}/sample.parquet",
        model=f"{RD}/round_{{r}}/model.joblib",
        sidecar=f"{RD}/round_{{r}}/model.json",
        per_species=f"{RD}/round_{{r}}/per_species.csv",
        test_set=f"{RD}/test_set.csv",
        test_labels=f"{LABELS_DIR}/test.csv",
        embeddings=f"{RESULTS}/detect/embeddings.parquet",
        label_set=LABEL_SET,
    output:
        **{
            name.replace(".", "_"): f"{RD}/round_{{r}}/{name}"
            for name in ANSWER_OUTPUTS
        },
    log:
        f"{RESULTS}/logs/rounds/round_{{r}}/answers.log",
    benchmark:
        f"{RESULTS}/benchmarks/rounds/round_{{r}}/answers.tsv"
    conda:
        CONDA_ENV
    params:
        thresholds=lookup(dpath="evaluate/thresholds", within=config, default={}),
        seed=lookup(dpath="rounds/seed", within=config),
    script:
        "../../scripts/round_answers.py"


rule round_plots:
    input:
        metrics=lambda wildcards: metrics_files(wildcards.r),
        strata=f"{RD}/round_{{r}}/strata_metrics.json",
        confusion=f"{RD}/round_{{r}}/confusion.csv",
        species=f"{RD}/round_{{r}}/per_species.csv",
    output:
        history=f"{RD}/round_{{r}}/history.csv",
        learning_curve=f"{RD}/round_{{r}}/learning_curve.png",
        strata_heatmap=f"{RD}/round_{{r}}/strata_heatmap.png",
        confusion_pairs=f"{RD}/round_{{r}}/confusion_pairs.png",
        species_ap=f"{RD}/round_{{r}}/species_ap.png",
    log:
        f"{RESULTS}/logs/rounds/round_{{r}}/plots.log",
    conda:
        CONDA_ENV
    params:
        top_pairs=lookup(dpath="evaluate/confusion_pairs", within=config, default=10),
    script:
        "../../scripts/round_plots.py"
