"""Config validation with one readable paragraph per error (no torch import)."""

from __future__ import annotations

from pathlib import Path

import yaml


class ConfigError(ValueError):
    """The config does not match config/schema/config.schema.yaml."""


def _where(path) -> str:
    parts = ""
    for p in path:
        parts += f"[{p}]" if isinstance(p, int) else (f".{p}" if parts else str(p))
    return parts or "the top level"


def _describe(error) -> str:
    """One sentence for a jsonschema error, with the allowed values when there are some."""
    where = _where(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"unknown key(s) {', '.join(map(repr, extra))} in {where}{hint}"
    if error.validator == "enum":
        return (f"{where} is {error.instance!r}, which is not allowed; "
                f"choose one of {', '.join(map(str, error.validator_value))}")
    if error.validator in {"oneOf", "anyOf"} and error.context:
        best = min(error.context, key=lambda e: len(e.message))
        best_where = where
        return f"{best_where} = {error.instance!r} is invalid ({best.message})"
    return f"{where} = {error.instance!r} is invalid: {error.message}"


def check_config(config: dict, schema_path: str | Path) -> None:
    """Raise ConfigError naming the first bad key, its value and what is allowed."""
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    raise ConfigError(
        f"Invalid configuration: {_describe(error)}. Fix it in the config file (or the "
        "--config/--configfile you passed); every key is documented in "
        "config/schema/config.schema.yaml."
    )
