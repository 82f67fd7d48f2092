# Active-learning rounds (activepam.rounds.rounds): for every round RR of rounds.plan
#   sample (excluding labelled units + test set) -> export clips/Raven tables -> labels
#   -> train on rounds 00..RR + re-score all segments -> evaluate on the test set -> figures.
# Labels live in rounds.labels_dir (DVC-tracked). With rounds.simulated_annotator the demo's
# oracle fills the exported Raven tables and the same importer writes them; otherwise
# <labels_dir>/round_RR.csv comes from `activepam labels import` and is a source file here.
from activepam.rounds.annotations import label_set_path
from activepam.rounds.answers import ANSWER_OUTPUTS
from activepam.rounds.rounds import (
    final_targets,
    label_files,
    metrics_files,
    predictions_path,
    round_files,
    round_plan,
    scores_path,
)

ROUNDS = config["rounds"]
ROUND_IDS = round_plan(config)  # validates rounds.plan before any work
LABELS_DIR = ROUNDS["labels_dir"]
LABEL_SET = str(label_set_path(config))
RD = f"{RESULTS}/rounds"


wildcard_constraints:
    r=r"\d{2}",
    name=r"round_\d{2}|test",


rule rounds_test_set:
    input:
        segments=f"{RESULTS}/detect/segments.parquet",
    output:
        f"{RD}/test_set.csv",
    log:
        f"{RESULTS}/logs/rounds/test_set.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
    params:
        n=ROUNDS["test_size"],
        seed=ROUNDS["seed"],
    script:
        "../../scripts/round_test_set.py"


rule rounds_export_test:
    input:
        units=f"{RD}/test_set.csv",
        predictions=f"{RESULTS}/detect/predictions.parquet",
        label_set=LABEL_SET,
    output:
        directory(f"{RD}/test/annotation"),
    log:
        f"{RESULTS}/logs/rounds/test_export.log",
    benchmark:
        f"{RESULTS}/benchmarks/rounds/test_export.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=1500,
    params:
        round_id="test",
        rounds=ROUNDS,
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
        f"{RD}/round_{{r}}/sample.parquet",
    log:
        f"{RESULTS}/logs/rounds/round_{{r}}/sample.log",
    benchmark:
        f"{RESULTS}/benchmarks/rounds/round_{{r}}/sample.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=3000,
    params:
        rounds=ROUNDS,
        config=config,
    script:
        "../../scripts/round_sample.py"


rule round_export:
    input:
        units=f"{RD}/round_{{r}}/sample.parquet",
        predictions=lambda wildcards: predictions_path(wildcards.r),
        label_set=LABEL_SET,
    output:
        directory(f"{RD}/round_{{r}}/annotation"),
    log:
        f"{RESULTS}/logs/rounds/round_{{r}}/export.log",
    benchmark:
        f"{RESULTS}/benchmarks/rounds/round_{{r}}/export.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=1500,
    params:
        round_id=lambda wildcards: wildcards.r,
        rounds=ROUNDS,
    script:
        "../../scripts/round_export.py"


if ROUNDS["simulated_annotator"]:

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
        resources:
            mem_mb=1000,
        params:
            unsure=ROUNDS.get("simulated_unsure", 0.0),
            seed=ROUNDS["seed"],
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
        predictions=f"{RD}/round_{{r}}/predictions.parquet",
    log:
        f"{RESULTS}/logs/rounds/round_{{r}}/train.log",
    benchmark:
        f"{RESULTS}/benchmarks/rounds/round_{{r}}/train.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=3000,
    params:
        train=config.get("train", {}),
        default_threshold=config.get("evaluate", {}).get("default_threshold", 0.5),
        top_k=config["detect"]["top_k"],
    script:
        "../../scripts/round_train.py"


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
    resources:
        mem_mb=1500,
    params:
        evaluate=config.get("evaluate", {}),
        strata=ROUNDS["strata"],
    script:
        "../../scripts/round_evaluate.py"


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
    resources:
        mem_mb=1500,
    params:
        round_id=lambda wildcards: wildcards.r,
        evaluate=config.get("evaluate", {}),
        strata=ROUNDS["strata"],
        seed=ROUNDS["seed"],
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
    resources:
        mem_mb=2000,
    params:
        thresholds=config["evaluate"].get("thresholds", {}),
        seed=ROUNDS["seed"],
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
    resources:
        mem_mb=1000,
    params:
        top_pairs=config.get("evaluate", {}).get("confusion_pairs", 10),
    script:
        "../../scripts/round_plots.py"
