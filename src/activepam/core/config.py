"""Load and validate ``params.yaml`` against ``workflow/schemas/params.schema.yaml``.

The same file is Snakemake's ``config`` and DVC's ``params``. Errors name the offending key
(``detect.batch_size``) so a bad configuration is reported before any work starts.
"""

from __future__ import annotations

import copy
import difflib
import functools
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


#: a subschema below which no default is filled (entries of user-named maps and list items)
_NO_FILL = "x-activepam-no-defaults"


def _fill_properties(
    validator: Any, properties: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Any:
    """``properties`` that first sets every missing key with a ``default`` (a deep copy)."""
    if isinstance(instance, dict) and not schema.get(_NO_FILL):
        for key, sub in properties.items():
            if isinstance(sub, dict) and "default" in sub and key not in instance:
                instance[key] = copy.deepcopy(sub["default"])
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](
        validator, properties, instance, schema
    )


#: Draft 2020-12 validation that fills defaults of declared properties while validating
FillingValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"properties": _fill_properties}
)


def _marked(schema: Any, below_user_map: bool = False) -> Any:
    """``schema`` with every subschema under ``additionalProperties`` / ``items`` marked
    :data:`_NO_FILL` (in place; the loaded copy, not the file)."""
    if isinstance(schema, dict):
        if below_user_map:
            schema[_NO_FILL] = True
        for key, sub in schema.items():
            if key == "properties" and isinstance(sub, dict):
                for prop in sub.values():
                    _marked(prop, below_user_map)
            elif key in ("additionalProperties", "items", "prefixItems", "oneOf", "anyOf", "allOf"):
                _marked(
                    sub,
                    True
                    if key in ("additionalProperties", "items", "prefixItems")
                    else below_user_map,
                )
    elif isinstance(schema, list):
        for sub in schema:
            _marked(sub, below_user_map)
    return schema


@functools.lru_cache(maxsize=8)
def _section_defaults(section: str, schema_path: str) -> dict[str, Any]:
    schema = yaml.safe_load(Path(schema_path).read_text())
    try:
        props = schema["properties"][section]["properties"]
    except KeyError:
        raise ConfigError(f"{schema_path}: no section {section!r}") from None
    return {k: v["default"] for k, v in props.items() if isinstance(v, dict) and "default" in v}


def schema_defaults(section: str, schema_path: Path | str = SCHEMA_PATH) -> dict[str, Any]:
    """``{key: default}`` of the keys of ``section`` that the schema gives a ``default:`` (deep
    copies; the single source of the defaults that code such as ``SimConfig`` uses)."""
    return copy.deepcopy(_section_defaults(section, str(schema_path)))


def validate_params(
    params: dict[str, Any], schema_path: Path | str = SCHEMA_PATH, source: str = "params.yaml"
) -> dict[str, Any]:
    """Validate ``params`` in place; raise :class:`ConfigError` listing every bad key.

    Missing keys the schema declares with a ``default:`` are filled in (:data:`FillingValidator`;
    the schema is the single source of defaults), except inside user-named maps (strategies,
    presets: ``additionalProperties`` entries), whose missing keys inherit from their ``base``.
    """
    schema = _marked(yaml.safe_load(Path(schema_path).read_text()))
    validator = FillingValidator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{source}: {_message(e)}" for e in errors]
        raise ConfigError("invalid configuration\n  " + "\n  ".join(lines))
    return params


def load_params(
    path: Path | str = "params.yaml", schema_path: Path | str = SCHEMA_PATH
) -> dict[str, Any]:
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


def params_or_empty(path: Path | str) -> dict[str, Any]:
    """:func:`load_params` of ``path``, or ``{}`` when it does not exist (commands run outside
    a project use their defaults)."""
    return load_params(path) if Path(path).exists() else {}
