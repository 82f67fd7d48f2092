"""Load and validate ``params.yaml`` against ``workflow/schemas/params.schema.yaml``.

The same file is Snakemake's ``config`` and DVC's ``params``. Errors name the offending key
(``detect.batch_size``) so a bad configuration is reported before any work starts.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import jsonschema
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[3]
SCHEMA_PATH = PROJECT_ROOT / "workflow" / "schemas" / "params.schema.yaml"


class ConfigError(ValueError):
    """A parameter file does not match its schema."""


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def _message(error: jsonschema.ValidationError) -> str:
    """``key.path: message``; an unknown key is named with the closest allowed one."""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted((error.schema.get("properties") or {}).keys())
        unknown = [k for k in error.instance if k not in allowed]
        parts = []
        for key in unknown:
            where = ".".join([*map(str, error.absolute_path), str(key)])
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            parts.append(f"{where}: unknown key{hint}; allowed: {', '.join(allowed)}")
        if parts:
            return "; ".join(parts)
    return f"{_key_path(error)}: {error.message}"


def validate_params(params: dict[str, Any], schema_path: Path | str = SCHEMA_PATH,
                    source: str = "params.yaml") -> dict[str, Any]:
    """Validate ``params`` in place; raise :class:`ConfigError` listing every bad key."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{source}: {_message(e)}" for e in errors]
        raise ConfigError("invalid configuration\n  " + "\n  ".join(lines))
    return params


def load_params(path: Path | str = "params.yaml",
                schema_path: Path | str = SCHEMA_PATH) -> dict[str, Any]:
    """Read a YAML parameter file and validate it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: parameter file not found")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return validate_params(params, schema_path, source=str(path))
