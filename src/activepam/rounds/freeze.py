"""Rounds that stay put: frozen settings of exported rounds, labelled rounds locked.

When a round (or the test set) is exported, its effective settings - strategy (name and the
fully resolved specification), number of units, seed, the scores it was drawn from and the
export options - are written to ``data/rounds/round_RR.settings.json`` (``test.settings.json``;
small JSON files kept in git, DVC output of the stage ``export@RR``). From then on the round's
rules take their parameters from that file, not from params.yaml: edits of ``rounds.*`` apply
only to rounds not yet exported (a warning names each exported round whose settings now differ).

A round whose labels exist (``<rounds.labels_dir>/round_RR.csv`` written by
``activepam labels import``; every label file when ``rounds.simulated_annotator`` is off) is
*locked*: no rule produces its sample or annotation set any more, so Snakemake never deletes
or regenerates them (``--forcerun``, ``--forceall``, changed inputs); a missing file of a locked
round stops the run with a message naming the round and the way out. The demo's simulated
labels are rule outputs, so the demo's rounds are frozen but not locked.

Changing an exported round takes an explicit command: ``activepam rounds unfreeze RR`` moves
its labels, import history and annotation set to ``data/rounds/archive/`` (nothing is deleted)
and removes the settings file; the next run samples and exports the round with the current
params. ``activepam rounds status`` lists every round's state.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activepam.core.io import write_json

#: folder of the frozen settings files (kept in git)
SETTINGS_DIR = "data/rounds"
#: where ``activepam rounds unfreeze`` moves a round's labels and annotation set
ARCHIVE_DIR = f"{SETTINGS_DIR}/archive"
ROUNDS_DIR = "results/rounds"
#: keys of the settings file that are provenance, not parameters of the rules
PROVENANCE_KEY = "exported"
#: ``rounds.*`` keys of the export options
EXPORT_KEYS: tuple[str, ...] = (
    "context_s",
    "annotators",
    "batch_by",
    "prefill_top",
    "prefill_min_confidence",
    "spectrograms",
)
_EXPORT_DEFAULTS: dict[str, Any] = {
    "context_s": 4.0,
    "annotators": [],
    "batch_by": "round_robin",
    "prefill_top": 3,
    "prefill_min_confidence": 0.1,
    "spectrograms": True,
}


class FrozenRoundError(RuntimeError):
    """A labelled round would be regenerated, or a frozen round's file is missing/invalid."""


def round_key(name: str | int) -> str:
    """``"00"`` for 0 / "0" / "00" / "round_00", ``"test"`` for the test set."""
    text = str(name).strip().removeprefix("round_")
    if text == "test":
        return text
    if not text.isdigit() or int(text) > 99:
        raise FrozenRoundError(
            f"round {name!r}: give a round number (0, 1, ... or 00, 01, ...) or 'test'"
        )
    return f"{int(text):02d}"


def _stem(key: str) -> str:
    return "test" if key == "test" else f"round_{key}"


def settings_path(name: str | int, settings_dir: str | Path = SETTINGS_DIR) -> Path:
    """``data/rounds/round_RR.settings.json`` (``test.settings.json`` for the test set)."""
    return Path(settings_dir) / f"{_stem(round_key(name))}.settings.json"


def labels_path(config: Mapping[str, Any], name: str | int) -> Path:
    """``<rounds.labels_dir>/round_RR.csv`` (``test.csv``)."""
    labels_dir = (config.get("rounds") or {}).get("labels_dir", "data/labels")
    return Path(labels_dir) / f"{_stem(round_key(name))}.csv"


def annotation_dir(name: str | int) -> Path:
    """``results/rounds/round_RR/annotation`` (``results/rounds/test/annotation``)."""
    return Path(ROUNDS_DIR) / _stem(round_key(name)) / "annotation"


def sample_file(name: str | int) -> Path:
    """The round's sample (``results/rounds/test_set.csv`` for the test set)."""
    key = round_key(name)
    if key == "test":
        return Path(ROUNDS_DIR) / "test_set.csv"
    return Path(ROUNDS_DIR) / f"round_{key}" / "sample.parquet"


def _plain(obj: Any) -> Any:
    """JSON round trip with sorted keys: what the settings file gives back (params compare
    equal before and after freezing)."""
    return json.loads(json.dumps(obj, sort_keys=True))


def export_settings(rounds: Mapping[str, Any]) -> dict[str, Any]:
    """The export options of the ``rounds`` section (defaults filled in)."""
    out = {k: rounds.get(k, v) for k, v in _EXPORT_DEFAULTS.items()}
    out["annotators"] = [str(a) for a in out["annotators"] or ()]
    out["context_s"] = float(out["context_s"])
    out["prefill_min_confidence"] = float(out["prefill_min_confidence"])
    return _plain(out)


def current_settings(
    config: Mapping[str, Any], name: str | int, label_set: str | None = None
) -> dict[str, Any]:
    """Effective settings of a round (or the test set) under the current params."""
    from activepam.rounds.rounds import predictions_path, scores_path, strategy_for
    from activepam.sampling.strategies import resolve_strategy

    key = round_key(name)
    rounds = config.get("rounds") or {}
    out: dict[str, Any] = {"round": key, "export": export_settings(rounds)}
    if label_set is not None:
        out["label_set"] = str(label_set)
    if key == "test":
        out.update(n=int(rounds["test_size"]), seed=int(rounds["seed"]))
        return _plain(out)
    strategy = strategy_for(config, key)
    out.update(
        strategy=strategy,
        spec=resolve_strategy(strategy, config),
        n=int(rounds["n_per_round"]),
        seed=int(rounds["seed"]) + int(key),
        scores=scores_path(key),
        predictions=predictions_path(key),
    )
    return _plain(out)


def read_settings(path: str | Path) -> dict[str, Any] | None:
    """A frozen settings file without its provenance block; None when it does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FrozenRoundError(
            f"{path}: not a readable settings file ({exc}); restore it from "
            "git (`git checkout -- <file>`)"
        ) from exc
    if not isinstance(data, dict) or "round" not in data:
        raise FrozenRoundError(f"{path}: not a round settings file (no 'round' key)")
    data.pop(PROVENANCE_KEY, None)
    return data


def round_settings(
    config: Mapping[str, Any],
    name: str | int,
    label_set: str | None = None,
    settings_dir: str | Path = SETTINGS_DIR,
) -> dict[str, Any]:
    """The settings a round's rules use: the frozen file once exported, else the current
    params (:func:`current_settings`)."""
    frozen = read_settings(settings_path(name, settings_dir))
    return frozen if frozen is not None else current_settings(config, name, label_set)


def freeze(
    settings: Mapping[str, Any], path: str | Path, provenance: Mapping[str, Any] | None = None
) -> Path:
    """Write a round's settings (plus a provenance block) atomically."""
    body = {**_plain(dict(settings)), PROVENANCE_KEY: _plain(dict(provenance or {}))}
    return write_json(body, path, stage="rounds")


def drift(frozen: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``key: frozen (params.yaml now current)`` for every setting that differs."""
    out = []
    for k in sorted(set(frozen) | set(current)):
        if k in ("round", "label_set") or frozen.get(k) == current.get(k):
            continue
        if k == "spec" and frozen.get("strategy") != current.get("strategy"):
            continue  # reported as the strategy name
        a, b = frozen.get(k), current.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += [
                f"{k}.{s}: {a.get(s)!r} (params.yaml now {b.get(s)!r})"
                for s in sorted(set(a) | set(b))
                if a.get(s) != b.get(s)
            ]
        else:
            out.append(f"{k}: {a!r} (params.yaml now {b!r})")
    return out


# --------------------------------------------------------------------------- round states


@dataclass(frozen=True)
class RoundState:
    """Where a round (or the test set) stands."""

    key: str
    #: its settings file exists (exported; settings frozen)
    exported: bool
    #: its label file exists
    labelled: bool
    #: labelled by experts (a source file, not the simulated annotator's output): locked
    locked: bool


def round_states(
    config: Mapping[str, Any], simulated: bool, settings_dir: str | Path = SETTINGS_DIR
) -> dict[str, RoundState]:
    """State of the test set and of every round of ``rounds.plan`` (keys "test", "00", ...)."""
    from activepam.rounds.rounds import round_plan

    out = {}
    for key in ["test", *round_plan(config)]:
        labelled = labels_path(config, key).exists()
        out[key] = RoundState(
            key, settings_path(key, settings_dir).exists(), labelled, labelled and not simulated
        )
    return out


def locked_message(key: str, problem: str) -> str:
    """The refusal naming a locked round and the way out."""
    what = "the test set" if key == "test" else f"round {key}"
    return (
        f"{what} is labelled, so its sample and annotation set are frozen and never "
        f"regenerated: {problem}. Restore the missing file (`dvc checkout "
        f"{annotation_dir(key).parent}` or from a backup); to redo {what} with the "
        f"current params.yaml run `activepam rounds unfreeze {key}` (its labels and "
        f"annotation set are archived under {ARCHIVE_DIR}/, nothing is deleted)."
    )


def forcerun_rules(argv: Sequence[str]) -> list[str]:
    """Rule names given to ``--forcerun`` / ``-R`` on a Snakemake command line (the Snakefile
    is parsed before Snakemake hands its DAG settings to the workflow)."""
    out: list[str] = []
    taking = False
    for arg in argv:
        if arg.startswith("--forcerun=") or arg.startswith("-R="):
            out += [a for a in arg.split("=", 1)[1].split(",") if a]
            taking = False
        elif arg in ("--forcerun", "-R"):
            taking = True
        elif arg.startswith("-") or arg == "--":
            taking = False
        elif taking:
            out.append(arg)
    return out


def check_locked(states: Mapping[str, RoundState], forcerun: Sequence[str] = ()) -> None:
    """Refuse (:class:`FrozenRoundError`) when a locked round's sample or annotation set is
    missing, or when a run forces the rules that would regenerate a locked round."""
    locked = [s.key for s in states.values() if s.locked]
    if not locked:
        return
    regen = {"round_sample", "round_export", "rounds_test_set", "rounds_export_test"}
    forced = sorted(regen & set(forcerun))
    if forced:
        key = next((k for k in locked if k != "test"), locked[0])
        raise FrozenRoundError(
            locked_message(
                key,
                f"--forcerun {' '.join(forced)} would regenerate it (labelled: "
                f"{', '.join(locked)}; run without --forcerun: the rounds without labels "
                "are redone when their inputs change)",
            )
        )
    for key in locked:
        for path in (sample_file(key), annotation_dir(key) / "manifest.csv"):
            if not path.exists():
                raise FrozenRoundError(locked_message(key, f"{path} is missing"))


def drift_warnings(
    config: Mapping[str, Any],
    states: Mapping[str, RoundState],
    label_set: str | None = None,
    settings_dir: str | Path = SETTINGS_DIR,
) -> list[str]:
    """One line per exported round whose frozen settings differ from params.yaml."""
    out = []
    for key, st in states.items():
        if not st.exported:
            continue
        frozen = read_settings(settings_path(key, settings_dir)) or {}
        diff = drift(frozen, current_settings(config, key, label_set))
        if diff:
            what = "test set" if key == "test" else f"round {key}"
            out.append(
                f"{what} keeps the settings it was exported with "
                f"({settings_path(key, settings_dir)}): {'; '.join(diff)}. They apply "
                f"to rounds not exported yet; `activepam rounds unfreeze {key}` redoes "
                f"the {what}."
            )
    return out


def simulated_annotator(config: Mapping[str, Any]) -> bool:
    """``rounds.simulated_annotator`` in effect: it needs the demo generator's ground truth
    (``demo.enabled``, or an ``events.parquet`` in ``data.raw_dir``)."""
    if not (config.get("rounds") or {}).get("simulated_annotator", False):
        return False
    data = config.get("data") or {}
    return (
        bool((config.get("demo") or {}).get("enabled"))
        or (Path(data.get("raw_dir", "data/raw")) / "events.parquet").exists()
    )


def pending_message(states: Mapping[str, RoundState], simulated: bool) -> str:
    """What ``make run`` leaves to the experts: the annotation sets waiting for labels and
    the command that imports the answers ("" when nothing waits)."""
    if simulated:
        return ""
    lines = []
    for key, st in states.items():
        if st.labelled:
            continue
        ann = annotation_dir(key)
        if not (ann / "manifest.csv").exists():
            if key != "test":
                break
            continue
        what = "the test set" if key == "test" else f"round {key}"
        arg = "test" if key == "test" else str(int(key))
        lines.append(
            f"  {what}: annotation set {ann}/ (one folder per annotator; "
            f"manifest.csv) -> import the answers with\n"
            f"      activepam labels import <returned tables> --round {arg}"
        )
        if key != "test":
            break
    if not lines:
        return ""
    return (
        "activepam: waiting for expert labels.\n" + "\n".join(lines) + "\n"
        "Then run `make run` again: it trains on the labels, evaluates on the test set "
        "and exports the next round of rounds.plan."
    )


# --------------------------------------------------------------------------- unfreeze / CLI


def _archive_target(key: str, archive_dir: Path) -> Path:
    k = 1
    while (archive_dir / f"{_stem(key)}.{k}").exists():
        k += 1
    return archive_dir / f"{_stem(key)}.{k}"


def unfreeze(
    config: Mapping[str, Any], name: str | int, settings_dir: str | Path = SETTINGS_DIR
) -> list[str]:
    """Make an exported round (or the test set) regenerable: its label file, conflicts and
    import history and its sample and annotation set move to ``data/rounds/archive/<round>.N/``
    (nothing is deleted) and its settings file is removed. Refused while a later round is
    exported (unfreeze the newest first). Returns what was done, one line each."""
    from activepam.rounds.rounds import round_plan

    key = round_key(name)
    plan = round_plan(config)
    if key != "test" and key not in plan:
        raise FrozenRoundError(f"round {key} is not in rounds.plan ({', '.join(plan)})")
    later = [
        r
        for r in plan
        if (key == "test" or int(r) > int(key)) and settings_path(r, settings_dir).exists()
    ]
    if later:
        raise FrozenRoundError(
            f"round {later[-1]} was exported after {key} and depends on it: "
            f"unfreeze the newest round first "
            f"(`activepam rounds unfreeze {later[-1]}`)"
        )
    labels = labels_path(config, key)
    moves = [
        labels,
        labels.with_name(f"{labels.stem}.conflicts.csv"),
        labels.parent / "history" / _stem(key),
        sample_file(key),
        annotation_dir(key),
    ]
    moves = [p for p in moves if p.exists()]
    settings = settings_path(key, settings_dir)
    done = []
    if moves:
        dest = _archive_target(key, Path(settings_dir) / "archive")
        dest.mkdir(parents=True)
        for p in moves:
            target = dest / str(p).replace("/", "__")
            shutil.move(str(p), target)
            done.append(f"moved {p} -> {target}")
    if settings.exists():
        if moves:
            shutil.copy2(settings, dest / settings.name)
        settings.unlink()
        done.append(f"removed {settings}")
    if not done:
        done.append(f"{_stem(key)} was not exported: nothing to unfreeze")
    return done


def _load_config(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.exists():
        raise FrozenRoundError(
            f"{p}: params file not found (run in the project folder or give --params)"
        )
    return yaml.safe_load(p.read_text()) or {}


def status_table(config: Mapping[str, Any], settings_dir: str | Path = SETTINGS_DIR) -> str:
    """One line per round: exported / labelled / locked."""
    rows = []
    for key, st in round_states(config, simulated_annotator(config), settings_dir).items():
        state = (
            "locked (labelled by experts)"
            if st.locked
            else "labelled (simulated annotator)"
            if st.labelled
            else "exported, waiting for labels"
            if st.exported
            else "not exported"
        )
        rows.append(f"{_stem(key):>9}  {state}")
    return "\n".join(rows)


def _run(args: argparse.Namespace) -> int:
    try:
        config = _load_config(args.params)
        if args.rounds_command == "status":
            print(status_table(config))
            return 0
        for line in unfreeze(config, args.round):
            print(f"activepam rounds: {line}")
        print(
            "activepam rounds: the next `make run` (or `dvc repro export@RR`) samples and "
            "exports it with the current params.yaml"
        )
        return 0
    except FrozenRoundError as exc:
        print(f"activepam rounds: {exc}", file=sys.stderr)
        return 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """``activepam rounds status|unfreeze``."""
    p = subparsers.add_parser(
        "rounds", help="state of the annotation rounds; unfreeze an exported round to redo it"
    )
    sub = p.add_subparsers(dest="rounds_command", metavar="ACTION", required=True)
    st = sub.add_parser("status", help="exported / labelled / locked, per round")
    un = sub.add_parser(
        "unfreeze",
        help="archive a round's labels and annotation set and "
        "drop its frozen settings, so the next run redoes it",
    )
    un.add_argument("round", help="round number (0, 1, ...) or 'test'")
    for sp in (st, un):
        sp.add_argument(
            "--params", default="params.yaml", help="params file (default: params.yaml)"
        )
        sp.set_defaults(func=_run)
