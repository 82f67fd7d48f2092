# Query by example (activepam.search.engine): a usearch index per detection shard, updated
# incrementally (only new segments are added, removed ones taken out). The index files sit
# beside the shard's embeddings and are not declared outputs (like the detection parts), so
# a re-run updates them instead of starting over; the declared output is a stamp.


# targets: search_targets() in common.smk (rule all)


rule search_index:
    input:
        embeddings=f"{RESULTS}/detect/shards/{{shard}}/embeddings.parquet",
    output:
        touch(f"{RESULTS}/detect/shards/{{shard}}/search_index.done"),
    log:
        f"{RESULTS}/logs/search/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/search/{{shard}}.tsv"
    wildcard_constraints:
        shard=r"\d{4}",
    conda:
        CONDA_ENV
    params:
        dtype=config["search"]["index_dtype"],
    script:
        "../../scripts/search_index.py"
