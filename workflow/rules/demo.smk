# Demo data: the seeded synthetic soundscape dataset written into data.raw_dir (audio in the
# TABMON layout, sites.csv, recordings.csv, species.csv, events.parquet, ground_truth.parquet).
# Only when demo.enabled; with your own recordings set it false and point data.* at them.

from activepam.demo.params import DEMO_KEYS

if DEMO:

    rule generate_demo:
        output:
            sites=f"{RAW_DIR}/sites.csv",
            truth=f"{RAW_DIR}/ground_truth.parquet",
            recordings=f"{RAW_DIR}/recordings.csv",
            events=f"{RAW_DIR}/events.parquet",
            species=f"{RAW_DIR}/species.csv",
        log:
            f"{RESULTS}/logs/generate_demo.log",
        benchmark:
            f"{RESULTS}/benchmarks/generate_demo.tsv"
        conda:
            CONDA_ENV
        params:
            # the demo keys the generator reads (all but enabled): editing another key
            # reruns nothing
            demo={k: config["demo"][k] for k in DEMO_KEYS if k in config["demo"]},
        script:
            "../../scripts/generate_demo.py"
