# Figures. The detection figures are the first three of FIGURES (common.smk).


rule plots_detections:
    input:
        segments=f"{RESULTS}/detect/segments.parquet",
    output:
        site_hour=f"{RESULTS}/figures/detections_site_hour.png",
        rank_frequency=f"{RESULTS}/figures/species_rank_frequency.png",
        uncertainty=f"{RESULTS}/figures/uncertainty_histograms.png",
    log:
        f"{RESULTS}/logs/plots_detections.log",
    conda:
        CONDA_ENV
    params:
        min_confidence=config["plots"].get("min_confidence", 0.1),
        top_species=config["plots"].get("top_species", 25),
    script:
        "../../scripts/plots_detections.py"
