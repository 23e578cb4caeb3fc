"""Read a params file (YAML, or JSON in the old ``config.json`` layout) into a dict, refusing
what YAML or JSON would read without a word: a key given twice in one mapping (the last would
win silently, as appending a second ``TRAINING:`` group to ``params.yaml`` resets every key of
the first), and aliases that expand to an absurd size. DVC refuses such a file too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from kerapipe.errors import ConfigError

MAX_PARAMS_VALUES = 100_000  # a params file is small; YAML aliases must not blow it up


class RepeatedKeyError(ValueError):
    """A mapping of the params file gives one key twice."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key written twice in one mapping is an error
    (keys merged in with ``<<`` may still be overridden, as YAML intends)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first_lines:
                raise RepeatedKeyError(
                    f"line {line}: {key} is given twice in one mapping (first at line "
                    f"{first_lines[key]}); YAML would keep only the last one and drop every "
                    "key of the first. Merge the two into one"
                )
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when it names a key twice."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise RepeatedKeyError(
                f"{key} is given twice in one object; JSON would keep only the last. Merge "
                "the two into one"
            )
        found[key] = value
    return found


def read_params_file(path: str | Path) -> dict[str, Any]:
    """Parse YAML (or JSON, by suffix) into a dict, with one clear error for a missing file,
    bad syntax, a repeated key or an absurd size."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"params file {str(path)!r} not found. Pass --params PATH, or run from the "
            "project folder that holds params.yaml."
        )
    data = _parse(path, _text(path))
    if _expanded_size(data) > MAX_PARAMS_VALUES:
        raise ConfigError(
            f"{path} expands to more than {MAX_PARAMS_VALUES:,} values, far more than any "
            "params file holds (YAML aliases nested inside each other?). Write the values out."
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} must be a mapping with the groups DATA, PIPELINE, INVENTORY, MODEL, "
            f"TRAINING; it holds a {type(data).__name__}."
        )
    return data


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {err.start} is {err.object[err.start]:#04x}). Save "
            "it as UTF-8 (most editors: 'Save with encoding')."
        ) from None


def _parse(path: Path, text: str) -> Any:
    try:
        if path.suffix == ".json":
            return json.loads(text, object_pairs_hook=_unique_pairs)
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except RepeatedKeyError as err:
        raise ConfigError(f"{path}: {err}.") from None
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}."
        ) from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(
            f"{path} is not valid YAML{at}: {problem}. Fix the syntax (indentation, "
            "colons, quotes) and run `kerapipe validate` again."
        ) from None


def _expanded_size(data: Any) -> int:
    """How many values ``data`` holds once YAML aliases are expanded, counted without
    expanding them: an alias shares its object, so each object's size is computed once."""
    sizes: dict[int, int] = {}

    def size(value: Any) -> int:
        if id(value) in sizes:
            return sizes[id(value)]
        children = value.values() if isinstance(value, dict) else value
        total = 1
        if isinstance(value, dict | list):
            sizes[id(value)] = MAX_PARAMS_VALUES + 1  # a cycle counts as too big
            total += sum(size(child) for child in children)
        sizes[id(value)] = min(total, MAX_PARAMS_VALUES + 1)
        return sizes[id(value)]

    return size(data)
