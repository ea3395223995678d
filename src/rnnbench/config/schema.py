"""Config validation with one readable paragraph per error (no torch import)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

from rnnbench.config import ConfigError


def _where(path) -> str:
    parts = ""
    for p in path:
        parts += f"[{p}]" if isinstance(p, int) else (f".{p}" if parts else str(p))
    return parts or "the top level"


def _is_strict_integer(checker, instance) -> bool:
    """An int, not a bool and not a float: jsonschema's own check takes 2.0 as an integer,
    which then reaches the trainer's argparse as '2.0' and fails there."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _walk(error) -> Iterator:
    """The error and, depth first, the errors of its oneOf/anyOf branches."""
    yield error
    for sub in error.context or ():
        yield from _walk(sub)


_EXPONENT = re.compile(r"^\s*([-+]?)(\d*)(?:\.(\d*))?[eE]([-+]?)(\d+)\s*$")


def yaml_number(text: str) -> str | None:
    """How to write the number in ``text`` so that PyYAML reads a number (``1e-3`` ->
    ``1.0e-3``), or None when ``text`` is no number."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    match = _EXPONENT.match(text)
    if match is None:  # a plain number in quotes
        return text.strip()
    sign, whole, frac, exp_sign, exp = match.groups()
    return f"{sign}{whole or 0}.{frac or 0}e{exp_sign or '+'}{exp}"


def _type_sentence(error) -> str | None:
    """A sentence with the fix for a float given to an integer key or a bool to a number."""
    for e in _walk(error):
        if e.validator != "type":
            continue
        wanted = e.validator_value if isinstance(e.validator_value, list) else [e.validator_value]
        where, value = _where(e.absolute_path), e.instance
        if "integer" in wanted and isinstance(value, float):
            if value.is_integer():
                return (f"{where} = {value!r} is written with a decimal point, and this key "
                        f"takes an integer: write {int(value)}")
            return (f"{where} = {value!r} is not an integer, as this key needs: give a whole "
                    f"number such as {math.floor(value)} or {math.ceil(value)}")
        if {"integer", "number"} & set(wanted) and isinstance(value, str):
            if (fix := yaml_number(value)) is not None:
                why = ("PyYAML reads an exponent as a number only with a decimal point and a "
                       "signed exponent" if _EXPONENT.match(value) else "quotes make a string")
                return (f"{where} = {value!r} is a string, and this key takes a number: write "
                        f"{fix}, without quotes ({why})")
        if wanted == ["boolean"] and str(value).lower() in {"true", "false"}:
            return (f"{where} = {value!r} is not a boolean: write {str(value).capitalize()} "
                    "(Snakemake's --config reads only True and False as booleans)")
        if {"integer", "number"} & set(wanted) and isinstance(value, bool):
            return (f"{where} = {value!r} is a boolean, and this key takes a number: give a number "
                    "(YAML reads yes/no/true/false as booleans)")
    return None


def _describe(error) -> str:
    """One sentence for a jsonschema error, with the allowed values when there are some."""
    where = _where(error.absolute_path)
    typed = _type_sentence(error)
    if typed:
        return typed
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"unknown key(s) {', '.join(map(repr, extra))} in {where}{hint}"
    if error.validator == "enum":
        return (f"{where} is {error.instance!r}, which is not allowed; "
                f"choose one of {', '.join(map(str, error.validator_value))}")
    if error.validator == "maxLength":
        return (f"{where}: the name {error.instance[:40]!r}... has {len(error.instance)} "
                f"characters, more than the {error.validator_value} allowed (it names folders "
                "and files, and file systems cap a name at 255 bytes): shorten it")
    if error.validator == "pattern" and error.schema.get("description"):
        return f"{where} = {error.instance!r} is invalid: {error.schema['description']}"
    if error.validator in {"oneOf", "anyOf"} and error.context:
        best = min(error.context, key=lambda e: len(e.message))
        return f"{where} = {error.instance!r} is invalid ({best.message})"
    return f"{where} = {error.instance!r} is invalid: {error.message}"


def non_finite(value, path: tuple = ()) -> Iterator[tuple[tuple, float]]:
    """(path, value) of every NaN or infinity in a nested config (no key takes one)."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from non_finite(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from non_finite(item, (*path, i))


def _fail(sentence: str) -> ConfigError:
    return ConfigError(
        f"Invalid configuration: {sentence}. Fix it in the config file (or the "
        "--config/--configfile you passed); every key is documented in "
        "config/schema/config.schema.yaml."
    )


def check_config(config: dict, schema_path: str | Path) -> None:
    """Raise ConfigError naming the first bad key, its value and what is allowed."""
    import jsonschema

    # NaN passes every bound (each comparison is False): lr = .nan would train to nonsense.
    bad = next(non_finite(config), None)
    if bad is not None:
        raise _fail(f"{_where(bad[0])} = {bad[1]!r} is not a finite number; give a finite "
                    "value (YAML reads .nan and .inf as NaN and infinity)")
    schema = yaml.safe_load(Path(schema_path).read_text())
    base = jsonschema.validators.validator_for(schema)
    strict = jsonschema.validators.extend(
        base, type_checker=base.TYPE_CHECKER.redefine("integer", _is_strict_integer))
    error = jsonschema.exceptions.best_match(strict(schema).iter_errors(config))
    if error is not None:
        raise _fail(_describe(error))
