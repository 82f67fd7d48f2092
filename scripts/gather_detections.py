"""Snakemake adapter for ``rule gather_detections`` (see activepam.detection.detect.merge_outputs)."""

import logging

from activepam.core.logs import rule_log
from activepam.detection.detect import merge_outputs



def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Concatenate the shard outputs; quarantine = inventory's + the shards'."""
    with rule_log(smk.log[0]):
        inputs = {
            "segments": list(smk.input.segments),
            "predictions": list(smk.input.predictions),
            "embeddings": list(smk.input.embeddings),
            "quarantine": [smk.input.inventory_quarantine, *smk.input.quarantine],
        }
        outputs = {k: smk.output[k] for k in ("segments", "predictions", "embeddings",
                                               "quarantine")}
        counts = merge_outputs(inputs, outputs)
        from activepam.core.store import link_store

        counts["store_files"] = link_store(list(smk.input.store), smk.output.store)
        logging.getLogger("gather_detections").info("gathered %s", counts)


main(snakemake)  # noqa: F821 - injected by Snakemake
