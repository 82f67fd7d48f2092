# Inventory: one row per audio file under data.raw_dir, deployment metadata from sites.csv,
# bad files to quarantine.csv. A checkpoint: the number of detection shards depends on it.


checkpoint inventory:
    input:
        demo=demo_outputs(),
        sites=SITES_CSV,
    output:
        inventory=f"{RESULTS}/inventory/inventory.parquet",
        quarantine=f"{RESULTS}/inventory/quarantine.csv",
    log:
        f"{RESULTS}/logs/inventory.log",
    benchmark:
        f"{RESULTS}/benchmarks/inventory.tsv"
    conda:
        CONDA_ENV
    params:
        # the folder scanned: its files are discovered here, so it is a param, not an input
        raw_dir=lambda wildcards: RAW_DIR,
        extensions=config["inventory"]["extensions"],
        min_duration_s=config["inventory"]["min_duration_s"],
        timezone=config["inventory"].get("timezone", "UTC"),
        shard_size=config["detect"]["shard_size"],
        shard_hours=config["detect"].get("shard_hours", 0),
    script:
        "../../scripts/inventory.py"
