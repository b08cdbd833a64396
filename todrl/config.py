"""Typed experiment configs: a dataclass, a YAML file, and command-line overrides.

Every field of a config dataclass is a flag: `--train-fraction 0.1` or
`--train_fraction 0.1`; nested dataclasses take dotted flags
(`--adapter.r 16`), and a nested dataclass with a `type` field can be set by
its own name (`--adapter lora` sets `adapter.type`). Precedence: dataclass
defaults < `--config FILE.yaml` < flags. `--help` shows each field's
attribute docstring, default and, for a `Literal` field, its choices.

The parser is hand-written on purpose: jsonargparse 4.53, tyro 1.0 and
simple-parsing 0.1.9 all read docstrings, defaults and `Literal` choices, but
none takes the `--adapter lora` shorthand (nor `adapter: lora` in YAML), `q,k`
lists or `--kl-target none`, which todrl's configs and docs use; each also
breaks one of `--resume` / `--resume no`, dashed flags, flags that win over
`--config` in any order, or a config inheriting fields from another module.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import yaml

C = TypeVar("C")

SYNTAX = ("Every flag also takes underscores (--train_fraction). Values: lists are comma-separated (q,k), none "
          "unsets an optional field, a bare boolean switch means yes.")


def _unwrap_optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp


def _convert(value: Any, tp: Any, name: str) -> Any:
    """Coerce a YAML or command-line value to the field's annotated type, naming the field when it does not fit."""
    try:
        return _coerce(value, tp)
    except (TypeError, ValueError) as err:
        raise ValueError(f"config field {name!r}: {err}") from None


def _coerce(value: Any, tp: Any) -> Any:
    optional = _unwrap_optional(tp) is not tp
    tp = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional or value is None:
            return None
    origin = typing.get_origin(tp)
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
        return [_coerce(v.strip() if isinstance(v, str) else v, item) for v in items if v != ""]
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_choices(config: Any) -> None:
    """Reject a `Literal` field holding another value; for `__post_init__`, since a dataclass does not check types."""
    for name, tp in _hints(type(config)).items():
        tp = _unwrap_optional(tp)
        value = getattr(config, name)
        if typing.get_origin(tp) is typing.Literal and value is not None and value not in typing.get_args(tp):
            raise ValueError(f"{name} must be one of {', '.join(map(str, typing.get_args(tp)))}, got {value!r}")


def check_ranges(config: Any) -> None:
    """Reject a number outside the interval its class's `RANGES` gives it ("(0, 1]", "[0, inf)"); for
    `__post_init__`, so that a bad value stops a run before any data or model is loaded. NaN is never inside,
    and an infinity only where the interval is closed at it."""
    for name, interval in getattr(type(config), "RANGES", {}).items():
        value = getattr(config, name)
        if value is not None and not _inside(value, interval):
            raise ValueError(f"{name} must be in {interval}, got {value}")


def _inside(value: float, interval: str) -> bool:
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    above = value >= low if interval[0] == "[" else value > low
    below = value <= high if interval[-1] == "]" else value < high
    return above and below


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


def field_docs(cls: type) -> dict[str, str]:
    """The string literal under each field (its attribute docstring), which Python itself discards."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_docs(klass))
    return docs


@functools.cache
def _own_docs(klass: type) -> dict[str, str]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
    except (OSError, TypeError):  # defined where no source is kept (an interactive session)
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    return {
        node.target.id: " ".join(after.value.value.split())
        for node, after in zip(body, body[1:])
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
        and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)
    }


@dataclasses.dataclass
class _Option:
    """One command-line option: the field path it sets and what its help shows."""

    path: tuple[str, ...]
    flags: list[str]
    tp: Any
    doc: str
    default: Any


def _default(field: dataclasses.Field, parent: Any) -> Any:
    if parent is not None:
        return getattr(parent, field.name)
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _spelling(path: tuple[str, ...]) -> str:
    return "--" + ".".join(path).replace("_", "-")


def _options(cls: type, parent: Any = None, prefix: tuple[str, ...] = ()) -> list[_Option]:
    """Every option of `cls` in field order; a nested dataclass's own flag sets its `type`. `parent` holds the defaults."""
    hints, docs = _hints(cls), field_docs(cls)
    options: list[_Option] = []
    for field in dataclasses.fields(cls):
        path, tp, default = (*prefix, field.name), _unwrap_optional(hints[field.name]), _default(field, parent)
        if not dataclasses.is_dataclass(tp):
            interval = getattr(cls, "RANGES", {}).get(field.name)
            doc = docs.get(field.name, "") + (f" Range: {interval}." if interval else "")
            options.append(_Option(path, [_spelling(path)], hints[field.name], doc.strip(), default))
            continue
        nested = _options(tp, default if dataclasses.is_dataclass(default) else None, path)
        shorthand = next((o for o in nested if o.path == (*path, "type")), None)
        if shorthand is not None:
            shorthand.flags.insert(0, _spelling(path))
            if field.name in docs:
                shorthand.doc = f"{docs[field.name]} type: {shorthand.doc}"
        options += nested
    return options


def _metavar(tp: Any) -> str:
    inner = _unwrap_optional(tp)
    origin = typing.get_origin(inner)
    if origin is typing.Literal:
        name = "{" + ",".join(map(str, typing.get_args(inner))) + "}"
    elif origin in (list, tuple):
        name = _metavar((typing.get_args(inner) or (str,))[0]) + ",..."
    else:
        name = {bool: "yes|no", int: "INT", float: "FLOAT", str: "TEXT"}.get(inner, "VALUE")
    return name + "|none" if inner is not tp else name


def _shown(value: Any) -> str:
    """A default as one would type it."""
    if value is dataclasses.MISSING:
        return "required"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(map(_shown, value)) if value else "empty"
    return str(value)


def _prog() -> str | None:
    """`python -m package` instead of `__main__.py` in usage lines."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return f"python -m {spec.name.removesuffix('.__main__')}" if spec is not None else None


def _read_yaml(path: Path, error: Callable[[str], NoReturn]) -> dict[str, Any]:
    if not path.is_file():
        error(f"--config: no such file: {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        error(f"--config {path}: not valid YAML: {err}")
    if not isinstance(loaded, dict):
        error(f"--config {path}: expected a mapping of field: value at the top level")
    return loaded


def _set(tree: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    for key in path[:-1]:
        node = tree.get(key)
        if not isinstance(node, dict):
            node = {"type": node} if isinstance(node, str) else {}
            tree[key] = node
        tree = node
    tree[path[-1]] = value


def _field_type(cls: type, path: tuple[str, ...]) -> Any:
    tp: Any = cls
    for name in path:
        tp = _unwrap_optional(_hints(tp)[name])
    return tp


def _parser(cls: type, description: str | None) -> argparse.ArgumentParser:
    """An argparse parser whose help documents every field; values stay strings until `from_dict` types them."""
    parser = argparse.ArgumentParser(prog=_prog(), usage="%(prog)s [-h] [--config FILE.yaml] [--FIELD VALUE ...]",
                                     description=description or cls.__doc__, epilog=SYNTAX, allow_abbrev=False)
    parser.add_argument("--config", type=Path, metavar="FILE.yaml",
                        help="YAML file of field: value pairs (see configs/); flags override it, it overrides the defaults")
    groups: dict[tuple[str, ...], Any] = {(): parser}
    for option in _options(cls):
        section = option.path[:-1]
        if section not in groups:
            nested = _field_type(cls, section)
            groups[section] = parser.add_argument_group(".".join(section), inspect.getdoc(nested))
        switch = {"nargs": "?", "const": "yes"} if _unwrap_optional(option.tp) is bool else {}
        text = f"{option.doc} (default: {_shown(option.default)})" if option.doc else f"(default: {_shown(option.default)})"
        common = {"dest": "__".join(option.path), "default": argparse.SUPPRESS, "metavar": _metavar(option.tp), **switch}
        groups[section].add_argument(*option.flags, help=text.replace("%", "%%"), **common)
        underscored = ["--" + f[2:].replace("-", "_") for f in option.flags if "-" in f[2:]]
        if underscored:  # accepted, not listed: the epilog says so
            parser.add_argument(*underscored, help=argparse.SUPPRESS, **common)
    return parser


def parse_config(cls: type[C], argv: list[str] | None = None, description: str | None = None) -> C:
    """Parse `--config FILE.yaml` and per-field overrides into a `cls` instance."""
    parser = _parser(cls, description)
    args = vars(parser.parse_args(argv))
    config_file = args.pop("config", None)
    values: dict[str, Any] = _read_yaml(config_file, parser.error) if config_file is not None else {}
    for dest, value in args.items():
        _set(values, tuple(dest.split("__")), value)
    try:
        return from_dict(cls, values, str(config_file or "command line"))
    except (TypeError, ValueError) as err:
        parser.error(str(err))


def parse_args_with_config(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """`--config FILE.yaml` for a hand-written argparse parser: keys are option names, and flags override them.

    The file's values become flags placed before the command line's, so
    argparse checks them (types, choices, exclusive options) and a later flag wins.
    """
    parser.add_argument("--config", type=Path, metavar="FILE.yaml",
                        help="YAML file of option: value pairs, named with underscores (batch_size: 64); flags override it")
    argv = list(sys.argv[1:] if argv is None else argv)
    locate = argparse.ArgumentParser(add_help=False, allow_abbrev=parser.allow_abbrev)
    locate.add_argument("--config", type=Path)
    path = locate.parse_known_args(argv)[0].config
    if path is None:
        return parser.parse_args(argv)
    options = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}
    values = _read_yaml(path, parser.error)
    unknown = sorted(set(values) - set(options))
    if unknown:
        parser.error(f"--config {path}: unknown field(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(options))}")
    flags: list[str] = []
    for key, value in values.items():
        action, flag = options[key], max(options[key].option_strings, key=len)
        if action.nargs == 0:  # a switch: true turns it on
            if not isinstance(value, bool):
                parser.error(f"--config {path}: {key} must be true or false, got {value!r}")
            flags += [flag] if value != action.default else []
        elif value is not None:
            try:
                typed = action.type(str(value)) if callable(action.type) else value
            except (TypeError, ValueError):
                parser.error(f"--config {path}: {key} must be of type {getattr(action.type, '__name__', action.type)}, got {value!r}")
            if action.choices is not None and typed not in action.choices:
                parser.error(f"--config {path}: {key} must be one of {', '.join(map(str, action.choices))}, got {value!r}")
            flags.append(f"{flag}={value}")
    return parser.parse_args(flags + argv)


def save_config(config: Any, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
