# Acoustic indices (scikit-maad) per recording or per indices.window_s window, one job per
# detection shard, gathered into results/indices/indices.parquet.


rule indices_shard:
    input:
        inventory=rules.inventory.output.inventory,
    output:
        indices=f"{RESULTS}/indices/shards/{{shard}}.parquet",
        quarantine=f"{RESULTS}/indices/shards/{{shard}}.quarantine.csv",
    log:
        f"{RESULTS}/logs/indices/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/indices/{{shard}}.tsv"
    wildcard_constraints:
        shard=r"\d\d\d\d+",  # 0000..9999, then 10000.. (a year: >10k shards)
    conda:
        CONDA_ENV
    params:
        window_s=config["indices"]["window_s"],
        anthro_band=config["indices"].get("anthro_band", [0, 1000]),
        bio_band=config["indices"].get("bio_band", [1000, 10000]),
    script:
        "../../scripts/indices_shard.py"


rule gather_indices:
    input:
        shards=shard_files(f"{RESULTS}/indices/shards/{{shard}}.parquet"),
        quarantine=shard_files(f"{RESULTS}/indices/shards/{{shard}}.quarantine.csv"),
    output:
        indices=f"{RESULTS}/indices/indices.parquet",
        quarantine=f"{RESULTS}/indices/quarantine.csv",
    log:
        f"{RESULTS}/logs/gather_indices.log",
    benchmark:
        f"{RESULTS}/benchmarks/gather_indices.tsv"
    conda:
        CONDA_ENV
    script:
        "../../scripts/gather_indices.py"
