"""Options from a YAML or JSON file into a stage's frozen config dataclass; options given on the
command line win. Shared by every command that takes ``--config``."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from edgekit.errors import InputError, did_you_mean


def read_config_file(
    path: Path,
    cls: type,
    overrides: dict[str, Any],
    paths: tuple[str, ...] = (),
    tuples: tuple[str, ...] = (),
    required: tuple[str, ...] = (),
) -> Any:
    """``cls(**options)``: the file's mapping (dashes or underscores), ``overrides`` that are not
    None on top, ``paths`` as Path, ``tuples`` as tuples; a missing ``required`` option is an error."""
    import json

    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"config file '{path}' does not exist", "pass a .yaml or .json file")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parse error is the user's file
        raise InputError(
            f"cannot parse config file '{path}': {str(exc).splitlines()[0]}", "fix the file"
        ) from exc
    if not isinstance(data, dict):
        raise InputError(
            f"config file '{path}' must hold a mapping of option: value", "write one option per line"
        )
    names = {f.name for f in fields(cls)}
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = [k for k in data if k not in names]
    if unknown:
        raise InputError(
            f"config file '{path}' has unknown option '{unknown[0]}'", did_you_mean(unknown[0], names)
        )
    merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    for key in paths:
        if merged.get(key) is not None:
            merged[key] = Path(merged[key])
    for key in tuples:
        value = merged.get(key)
        if value is not None:
            merged[key] = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    missing = [k for k in required if merged.get(k) is None]
    if missing:
        raise InputError(
            f"missing option '{missing[0]}'",
            f"give --{missing[0].replace('_', '-')} or put it in the config file",
        )
    try:
        return cls(**merged)
    except TypeError as exc:
        raise InputError(f"config file '{path}': {exc}", "check the option names and values") from exc
