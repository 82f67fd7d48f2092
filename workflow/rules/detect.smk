# Detection: BirdNET V2.4 per shard of the inventory (segments, top-k predictions, embeddings),
# then one gather into results/detect/. Finished recordings are cached as part files in
# results/detect/parts/ (not a declared output), so a killed shard job loses only the
# recording it was working on: Snakemake removes the incomplete shard outputs, the parts stay.


rule detect_shard:
    input:
        inventory=rules.inventory.output.inventory,
    output:
        segments=f"{RESULTS}/detect/shards/{{shard}}/segments.parquet",
        predictions=f"{RESULTS}/detect/shards/{{shard}}/predictions.parquet",
        embeddings=f"{RESULTS}/detect/shards/{{shard}}/embeddings.parquet",
        quarantine=f"{RESULTS}/detect/shards/{{shard}}/quarantine.csv",
        # device_id=*/month=*/part-<shard>.parquet (detect.embedding_dtype), from the parts
        store=directory(f"{RESULTS}/detect/shards/{{shard}}/store"),
    log:
        f"{RESULTS}/logs/detect/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/detect/{{shard}}.tsv"
    wildcard_constraints:
        shard=r"\d\d\d\d+",  # 0000..9999, then 10000.. (a year: >10k shards)
    conda:
        CONDA_ENV
    params:
        # only the detect keys that change results (activepam.detection.steps.DETECT_KEYS);
        # batch_size and threads change no number: the script reads batch_size from the config
        overlap_s=config["detect"]["overlap_s"],
        sensitivity=config["detect"].get("sensitivity", 1.0),
        top_k=config["detect"]["top_k"],
        species_filter=config["detect"].get("species_filter", "auto"),
        species_list=config["detect"].get("species_list", ""),
        location_threshold=config["detect"].get("location_threshold", 0.03),
        embedding_dtype=config["detect"].get("embedding_dtype", "float32"),
        parts_dir=f"{RESULTS}/detect/parts",
        # species_filter auto / label_set: the project's label set (rounds.label_set)
        label_set=str(label_set_path(config)),
    script:
        "../../scripts/detect_shard.py"


rule gather_detections:
    input:
        segments=shard_files(f"{RESULTS}/detect/shards/{{shard}}/segments.parquet"),
        predictions=shard_files(
            f"{RESULTS}/detect/shards/{{shard}}/predictions.parquet"
        ),
        embeddings=shard_files(f"{RESULTS}/detect/shards/{{shard}}/embeddings.parquet"),
        quarantine=shard_files(f"{RESULTS}/detect/shards/{{shard}}/quarantine.csv"),
        store=shard_files(f"{RESULTS}/detect/shards/{{shard}}/store"),
        inventory_quarantine=rules.inventory.output.quarantine,
    output:
        segments=f"{RESULTS}/detect/segments.parquet",
        predictions=f"{RESULTS}/detect/predictions.parquet",
        embeddings=f"{RESULTS}/detect/embeddings.parquet",
        quarantine=f"{RESULTS}/detect/quarantine.csv",
        # the Hive-partitioned embedding store: the shards' files, hard-linked (activepam.core.store)
        store=directory(f"{RESULTS}/detect/store/embeddings"),
    log:
        f"{RESULTS}/logs/detect/gather.log",
    benchmark:
        f"{RESULTS}/benchmarks/detect/gather.tsv"
    conda:
        CONDA_ENV
    script:
        "../../scripts/gather_detections.py"
