# Helpers shared by the rules: configuration validation, paths, shard lookup.
import math
import sys

import pandas as pd

from activepam.core.labels import label_set_path
from activepam.core.config import validate_params
from activepam.rounds.freeze import simulated_annotator

# Reported before any work starts, naming the key (see workflow/schemas/params.schema.yaml).
validate_params(config, workflow.source_path("../schemas/params.schema.yaml"))

# software of every rule (used with --sdm conda; make run uses .venv)
CONDA_ENV = "../envs/activepam.yaml"

RESULTS = "results"
RAW_DIR = config["data"]["raw_dir"]
SITES_CSV = config["data"]["sites_csv"]
DEMO = config["demo"]["enabled"]
# the demo's simulated annotator needs the generator's ground truth (events.parquet)
SIMULATED = simulated_annotator(config)
if config["rounds"]["simulated_annotator"] and not SIMULATED:
    print(
        f"activepam: rounds.simulated_annotator is on but {RAW_DIR}/events.parquet (the demo "
        "generator's ground truth) does not exist: rounds are exported for expert labels",
        file=sys.stderr,
    )


def label_set_file(config):
    """The species label set: rounds.label_set; else species.csv in data.raw_dir (the demo's,
    or one you put there); else results/rounds/label_set.csv, derived after detection from the
    species BirdNET's meta-model expects at the sites (rule rounds_label_set)."""
    if config["rounds"].get("label_set"):
        return str(config["rounds"]["label_set"])
    beside = label_set_path(config)
    if DEMO or beside.exists():
        return str(beside)
    return f"{RESULTS}/rounds/label_set.csv"


LABEL_SET = label_set_file(config)


def demo_outputs():
    """Files the demo generator writes (empty when the user brings recordings)."""
    if not DEMO:
        return []
    return [
        f"{RAW_DIR}/{name}"
        for name in (
            "sites.csv",
            "ground_truth.parquet",
            "recordings.csv",
            "events.parquet",
            "species.csv",
        )
    ]


def detect_shards(wildcards=None):
    """Shard ids decided by the inventory checkpoint: its ``shard`` column (detect.shard_hours
    of audio or detect.shard_size recordings each); one shard 0000 for an empty inventory.
    """
    inv = checkpoints.inventory.get().output.inventory
    shards = (
        pd.read_parquet(inv, columns=["shard"])["shard"].astype(str).unique().tolist()
    )
    return sorted(shards) or ["0000"]


def shard_files(pattern):
    """Input function: ``pattern`` formatted for every detection shard."""

    def _inner(wildcards):
        return [pattern.format(shard=s) for s in detect_shards()]

    return _inner


FIGURES = [
    f"{RESULTS}/figures/detections_site_hour.png",
    f"{RESULTS}/figures/species_rank_frequency.png",
    f"{RESULTS}/figures/uncertainty_histograms.png",
]


def all_targets(wildcards):
    return [
        f"{RESULTS}/inventory/inventory.parquet",
        f"{RESULTS}/detect/segments.parquet",
        f"{RESULTS}/detect/predictions.parquet",
        f"{RESULTS}/detect/embeddings.parquet",
        f"{RESULTS}/indices/indices.parquet",
        *FIGURES,
        *ROUND_TARGETS,  # the rounds played or waiting for labels (rounds.smk)
        *SIM_TARGETS,  # strategy comparison + stratified analyses (simulate.smk)
        *SAMPLE_TARGETS,  # one sample + figures per sampling.run strategy (sample.smk)
    ]


def search_targets(wildcards):
    """Index stamps of every detection shard when search.build_index is on (search.smk)."""
    if not config["search"]["build_index"]:
        return []
    return shard_files(f"{RESULTS}/detect/shards/{{shard}}/search_index.done")(
        wildcards
    )


def print_pending_rounds():
    """After a successful run with experts: the annotation sets waiting for labels
    (Snakefile onsuccess).
    """
    from activepam.rounds.freeze import pending_message, round_states

    message = pending_message(round_states(config, SIMULATED), SIMULATED)
    if message:
        print(message, file=sys.stderr)
