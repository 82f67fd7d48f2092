"""Snakemake adapter for ``rule round_evaluate`` and ``rule rounds_baseline``
(see activepam.rounds.round_metrics / evaluate_model)."""

from activepam.logs import rule_log
from activepam.annotations import read_label_set
from activepam.rounds import evaluate_model, round_metrics, write_round_metrics


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Test-set metrics of a round model, or of BirdNET (the baseline rule has no model)."""
    with rule_log(smk.log[0]):
        ev = dict(smk.params.evaluate)
        i = smk.input
        common = dict(test_set=i.test_set, test_labels=i.test_labels, embeddings=i.embeddings,
                      predictions=i.predictions, label_set=read_label_set(i.label_set),
                      keys=list(smk.params.strata), bins=int(ev.get("ece_bins", 10)),
                      default_threshold=float(ev.get("default_threshold", 0.5)))
        if "model" in i.keys():
            metrics, species, confusion = round_metrics(smk.params.round_id, i.model, i.sidecar,
                                                        i.baseline, round_labels=i.labels,
                                                        segments=i.segments, **common)
        else:
            metrics, species, confusion = evaluate_model(None, **common)
            metrics = {"round": "baseline", "model": "BirdNET", **metrics}
        o = smk.output
        write_round_metrics(metrics, species, confusion, o.metrics, o.species, o.confusion,
                            o.strata)


main(snakemake)  # noqa: F821 - injected by Snakemake
