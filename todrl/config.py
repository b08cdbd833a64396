"""Typed experiment configs: a dataclass, a YAML file, and command-line overrides.

Every field of a config dataclass is a flag: `--train-fraction 0.1` or
`--train_fraction 0.1`; nested dataclasses take dotted flags
(`--adapter.r 16`), and a nested dataclass with a `type` field can be set by
its own name (`--adapter lora` sets `adapter.type`). Precedence: dataclass
defaults < `--config FILE.yaml` < flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C")


def _unwrap_optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp


def _convert(value: Any, tp: Any, name: str) -> Any:
    """Coerce a YAML or command-line value to the field's annotated type."""
    optional = _unwrap_optional(tp) is not tp
    tp = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional or value is None:
            return None
    origin = typing.get_origin(tp)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            lowered = str(value).lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"not a boolean: {value!r}")
        if tp in (int, float, str):
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(f"not an integer: {value!r}")
            return tp(value)
        if origin is typing.Literal:
            choices = typing.get_args(tp)
            if value not in choices:
                raise ValueError(f"{value!r} is not one of {', '.join(map(str, choices))}")
            return value
        if origin in (list, tuple):
            (item,) = typing.get_args(tp)[:1] or (str,)
            items = value.split(",") if isinstance(value, str) else list(value)
            return [_convert(v.strip() if isinstance(v, str) else v, item, name) for v in items if v != ""]
    except (TypeError, ValueError) as err:
        raise ValueError(f"config field {name!r}: {err}") from None
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type[C], values: dict[str, Any], source: str = "config") -> C:
    """Build a (possibly nested) config dataclass, rejecting unknown keys by name."""
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {', '.join(unknown)} for {cls.__name__}; known: {', '.join(sorted(names))}")
    kwargs = {}
    for key, value in values.items():
        tp = _unwrap_optional(hints[key])
        if dataclasses.is_dataclass(tp):
            if isinstance(value, str) and "type" in {f.name for f in dataclasses.fields(tp)}:
                value = {"type": value}
            kwargs[key] = from_dict(tp, value or {}, f"{source}.{key}")
        else:
            kwargs[key] = _convert(value, hints[key], f"{source}.{key}")
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _flags(cls: type, prefix: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Map every flag spelling to the field path it sets."""
    flags: dict[str, tuple[str, ...]] = {}
    hints = _hints(cls)
    for field in dataclasses.fields(cls):
        path = (*prefix, field.name)
        tp = _unwrap_optional(hints[field.name])
        nested = dataclasses.is_dataclass(tp)
        dotted = ".".join(path)
        for spelling in {dotted, dotted.replace("_", "-")}:
            flags["--" + spelling] = path + (("type",) if nested else ())
        if nested:
            flags.update(_flags(tp, path))
    return flags


def _field_type(cls: type, path: tuple[str, ...]) -> Any:
    tp: Any = cls
    for name in path:
        tp = _unwrap_optional(_hints(tp)[name])
    return tp


def _set(tree: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    for key in path[:-1]:
        node = tree.get(key)
        if not isinstance(node, dict):
            node = {"type": node} if isinstance(node, str) else {}
            tree[key] = node
        tree = node
    tree[path[-1]] = value


def parse_config(cls: type[C], argv: list[str] | None = None, description: str | None = None) -> C:
    """Parse `--config FILE.yaml` and per-field overrides into a `cls` instance."""
    flags = _flags(cls)
    parser = argparse.ArgumentParser(description=description or cls.__doc__, allow_abbrev=False)
    parser.add_argument("--config", type=Path, help="YAML file with field values (see configs/)")
    spellings: dict[tuple[str, ...], list[str]] = {}
    for flag, path in flags.items():
        spellings.setdefault(path, []).append(flag)
    for path, aliases in spellings.items():
        switch = {"nargs": "?", "const": "true"} if _field_type(cls, path) is bool else {}
        parser.add_argument(*sorted(aliases), dest="__".join(path), default=argparse.SUPPRESS, metavar="VALUE", **switch)
    args = vars(parser.parse_args(argv))
    values: dict[str, Any] = {}
    config_file = args.pop("config", None)
    if config_file is not None:
        if not config_file.is_file():
            parser.error(f"--config: no such file: {config_file}")
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError as err:
            parser.error(f"--config {config_file}: not valid YAML: {err}")
        if not isinstance(loaded, dict):
            parser.error(f"--config {config_file}: expected a mapping of field: value at the top level")
        values.update(loaded)
    for dest, value in args.items():
        _set(values, tuple(dest.split("__")), value)
    try:
        return from_dict(cls, values, str(config_file or "command line"))
    except (TypeError, ValueError) as err:
        parser.error(str(err))
        raise  # unreachable: parser.error exits


def save_config(config: Any, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
