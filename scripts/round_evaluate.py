"""Snakemake adapter for ``rule round_evaluate`` and ``rule rounds_baseline``
(see activepam.rounds.rounds.round_metrics / evaluate_model)."""

from activepam.core.logs import rule_log
from activepam.rounds.annotations import read_label_set
from activepam.rounds.answers import stopping_block
from activepam.rounds.rounds import evaluate_model, round_metrics, write_round_metrics
from activepam.core.stopping import StoppingOptions


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
            st = dict(ev.get("stopping") or {})
            opts = StoppingOptions(kappa_threshold=float(st.get("kappa_threshold", 0.99)),
                                   window=int(st.get("window", 3)),
                                   min_gain=float(st.get("min_gain", 0.005)))
            metrics["stopping"] = stopping_block(
                list(i.round_predictions), list(i.sidecars), list(i.previous_metrics), metrics,
                i.segments, i.test_set, common["label_set"], int(st.get("stop_set", 2000)),
                int(smk.params.seed), opts)
        else:
            metrics, species, confusion = evaluate_model(None, **common)
            metrics = {"round": "baseline", "model": "BirdNET", **metrics}
        o = smk.output
        write_round_metrics(metrics, species, confusion, o.metrics, o.species, o.confusion,
                            o.strata)


main(snakemake)  # noqa: F821 - injected by Snakemake
