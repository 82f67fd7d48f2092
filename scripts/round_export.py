"""Snakemake adapter for ``rule round_export`` / ``rounds_export_test``
(see activepam.rounds.rounds.export_round)."""

from pathlib import Path

import pandas as pd

from activepam.core.logs import rule_log
from activepam.rounds.annotations import read_label_set
from activepam.rounds.rounds import export_options, export_round, strategy_for


def main(smk) -> None:  # noqa: ANN001 - the snakemake object
    """Clips, spectrograms, pre-filled Raven tables and manifest.csv of one round."""
    with rule_log(smk.log[0]):
        units_path = Path(smk.input.units)
        units = pd.read_parquet(units_path) if units_path.suffix == ".parquet" \
            else pd.read_csv(units_path, dtype={"unit_id": str, "recording_id": str})
        round_id = str(smk.params.round_id)
        strategy = "test_set" if round_id == "test" else \
            strategy_for({"rounds": smk.params.rounds}, round_id)
        export_round(units, smk.input.predictions, smk.output[0], round_id,
                     export_options(smk.params.rounds), strategy,
                     label_set=read_label_set(smk.input.label_set))


main(snakemake)  # noqa: F821 - injected by Snakemake
