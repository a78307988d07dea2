"""Versioned JSON records: a record class states its schema number, writes it into its JSON as "schema", and reads a
dict back into its nested dataclasses, upgrading an older schema in memory where a named function says how and
refusing any other with one message. A dict without "schema" is schema 1 (records written before schemas existed).

Shared by every stage's records (dataset summary, metrics, strategy and quality reports, the run record), so it sits
in the lowest stage.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Self

from benchmark.errors import MedAugBenchError
from benchmark.provenance import code_version

SCHEMA_KEY = "schema"


class Versioned:
    """Base of versioned record dataclasses.

    SCHEMA: the layout this code writes and reads; NAME: what messages call the record; UPGRADES: old schema →
    function turning a dict of that schema into one of the next (applied in turn up to SCHEMA).
    """

    SCHEMA: ClassVar[int] = 1
    NAME: ClassVar[str] = "record"
    UPGRADES: ClassVar[dict[int, Callable[[dict], dict]]] = {}

    def to_dict(self) -> dict:
        """The JSON form: every field (nested records in their own JSON form) and the schema number."""
        return {SCHEMA_KEY: self.SCHEMA} | _fields_to_json(self)

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        """The record in `data` (its JSON form), upgraded from an older schema when this code knows how."""
        return _build_fields(cls, upgraded(cls, data))

    def __getitem__(self, key: str) -> Any:
        """Read access to the JSON form (`record["metrics"]["test"]`), for code not yet moved to attributes."""
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """`to_dict().get(key, default)`, like `__getitem__` for code not yet moved to attributes."""
        return self.to_dict().get(key, default)


def upgraded(cls: type[Versioned], data: dict) -> dict:
    """`data` in `cls`'s current schema, without the schema key: older schemas go through `cls.UPGRADES` in turn;
    a newer one, or an older one without an upgrade, is one message saying what to do."""
    if not isinstance(data, dict):
        raise MedAugBenchError(f"the {cls.NAME} is {type(data).__name__}, not a JSON object")
    schema = data.get(SCHEMA_KEY, 1)
    while schema != cls.SCHEMA:
        upgrade = cls.UPGRADES.get(schema) if isinstance(schema, int) and schema < cls.SCHEMA else None
        if upgrade is None:
            raise MedAugBenchError(_schema_message(cls, schema))
        data, schema = upgrade(data), schema + 1
    return {key: value for key, value in data.items() if key != SCHEMA_KEY}


def _schema_message(cls: type[Versioned], schema: object) -> str:
    """Why a record of `schema` cannot be read, and the two ways out."""
    reads = f"this medaugbench ({code_version()['medaugbench']}) reads schema {cls.SCHEMA}"
    if isinstance(schema, int) and schema > cls.SCHEMA:
        return f"the {cls.NAME} has schema {schema}; {reads}: upgrade medaugbench, or re-run the cell with this version"
    return (
        f"the {cls.NAME} has schema {schema}; {reads} and cannot upgrade it: re-run the cell with this version, "
        "or read it with the medaugbench that wrote it"
    )


def build(kind: Any, value: Any) -> Any:
    """`value` (JSON form) as type `kind`: dataclasses field by field from their type hints, versioned records through
    their `from_dict`, containers element by element; values already of the type, and plain values, as they are."""
    if value is None:
        return None
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        kinds = [k for k in args if k is not type(None)]
        return build(kinds[0], value) if len(kinds) == 1 else value
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if isinstance(value, kind):
            return value
        return kind.from_dict(value) if issubclass(kind, Versioned) else _build_fields(kind, value)
    if origin is dict:
        return {key: build(args[1], item) for key, item in value.items()}
    if origin is list:
        return [build(args[0], item) for item in value]
    if origin is tuple:
        return tuple(build(args[0], item) for item in value)
    return value


def _to_json(value: Any) -> Any:
    """The JSON form of a value: records through `to_dict`, other dataclasses field by field, tuples as lists."""
    if isinstance(value, Versioned):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields_to_json(value)
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(item) for item in value]
    return value


def _fields_to_json(record: Any) -> dict:
    return {f.name: _to_json(getattr(record, f.name)) for f in dataclasses.fields(record)}


def _build_fields(kind: type, data: dict) -> Any:
    """A dataclass from a dict of its fields; a missing required field or an unknown one is an error naming it."""
    name = getattr(kind, "NAME", kind.__name__)
    if not isinstance(data, dict):
        raise MedAugBenchError(f"the {name} is {type(data).__name__}, not a JSON object")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = sorted(set(data) - set(fields))
    required = {n for n, f in fields.items() if f.default is f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(data))
    if unknown or missing:
        problems = [f"lacks fields {missing}"] * bool(missing) + [f"has unknown fields {unknown}"] * bool(unknown)
        raise MedAugBenchError(f"the {name} {' and '.join(problems)}: it is damaged or of another layout")
    hints = typing.get_type_hints(kind)
    return kind(**{key: build(hints[key], value) for key, value in data.items()})
