"""The one settings mechanism: a frozen dataclass per component, each field naming where it is read from.

A component declares its settings once::

    @dataclass(frozen=True)
    class ServiceSettings:
        bundle: str = setting("RECS_BUNDLE", default="artifacts/bundle")
        aws_region: str | None = setting("RECS_AWS_REGION", "AWS_REGION", default=None)
        service_name: str = "recommender"          # no name: never read from the environment

        def __post_init__(self) -> None:
            check(self.bundle != "", self, "bundle", "must name a bundle")

and reads it with ``load(ServiceSettings, os.environ, bundle=cli_value)``:

- only the names a field declares are read (the first one that is set and not blank wins), so every
  variable a component understands is written down next to its default; nothing is derived from
  field names;
- values are parsed by the field's type (``str``, ``int``, ``float``, ``bool``, optionally ``| None``, or
  a nested settings dataclass), from strings (environment, ``-c key=value``) or JSON values (``cdk.json``);
- explicit overrides beat the source (``None`` means "not given"); an unknown override is refused;
- every error is a ``SettingsError`` naming the variable (``RECS_CACHE_TTL_SECONDS: 'five' is not an
  integer``), raised at start-up by ``load`` or by the class's own ``__post_init__`` checks.

The forecaster Lambda ships this module (and ``core.errors``) without numpy: it imports only the
standard library.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from core.errors import SettingsError

T = TypeVar("T")
NAMES = "recs.settings.names"
SECRET = "recs.settings.secret"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def setting(
    *names: str,
    default: Any = dataclasses.MISSING,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    secret: bool = False,
) -> Any:
    """A settings field read from the first of ``names`` that is set (variables or context keys).

    ``secret`` fields are masked by ``describe``.
    """
    metadata = {NAMES: tuple(names), SECRET: secret}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def names_of(cls: type[Any] | Any, field_name: str) -> tuple[str, ...]:
    """The names a field is read from (empty for a field that is never read from a source)."""
    klass = cls if isinstance(cls, type) else type(cls)
    for f in dataclasses.fields(klass):
        if f.name == field_name:
            return tuple(f.metadata.get(NAMES, ()))
    raise KeyError(field_name)


def label(cls: type[Any] | Any, field_name: str) -> str:
    """How errors name a field: its first declared name (``RECS_BUNDLE``), else the field name."""
    names = names_of(cls, field_name)
    klass = cls if isinstance(cls, type) else type(cls)
    fmt: Callable[[str], str] = getattr(klass, "settings_label", staticmethod(lambda name: name))
    return fmt(names[0]) if names else field_name


def check(ok: bool, settings: Any, field_name: str, why: str) -> None:
    """Raise ``SettingsError("<label>: <why>")`` unless ``ok`` (for ``__post_init__`` checks)."""
    if not ok:
        klass = type(settings)
        error: type[SettingsError] = getattr(klass, "settings_error", SettingsError)
        raise error(f"{label(klass, field_name)}: {why}")


def _field_types(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    """``int | None`` -> ``(int, True)``; ``int`` -> ``(int, False)``."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return kind, False


def parse_value(kind: Any, raw: Any, name: str) -> Any:
    """``raw`` (a string, or a JSON value) as a value of ``kind``; ``SettingsError`` naming ``name``."""
    base, optional = _unwrap_optional(kind)
    if isinstance(raw, str):
        text = raw.strip()
        if optional and text == "":
            return None
    else:
        text = str(raw)
    if base is bool:
        if isinstance(raw, bool):
            return raw
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise SettingsError(f"{name}: {raw!r} is not a boolean (true/false)")
    if base is int:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise SettingsError(f"{name}: {raw!r} is not an integer")
        try:
            return int(raw if isinstance(raw, int | float) else text)
        except ValueError:
            raise SettingsError(f"{name}: {raw!r} is not an integer") from None
    if base is float:
        if isinstance(raw, bool):
            raise SettingsError(f"{name}: {raw!r} is not a number")
        try:
            return float(raw if isinstance(raw, int | float) else text)
        except ValueError:
            raise SettingsError(f"{name}: {raw!r} is not a number") from None
    if base is str:
        return text
    raise TypeError(f"settings field {name}: unsupported type {kind!r}")


def load(cls: type[T], source: Mapping[str, Any], /, **overrides: Any) -> T:
    """An instance of the settings dataclass ``cls`` from ``source`` (the environment, or CDK context)
    and ``overrides`` (``None`` = not given; they win). Nested settings dataclasses are read from the
    same source and take the overrides named like their own fields. Raises ``SettingsError``."""
    given = {k: v for k, v in overrides.items() if v is not None}
    error: type[SettingsError] = getattr(cls, "settings_error", SettingsError)
    values, used = _values(cls, source, given, error)
    unknown = set(given) - used
    if unknown:
        raise error(f"unknown setting(s): {', '.join(sorted(unknown))}")
    return cls(**values)


def _values(
    cls: type[Any], source: Mapping[str, Any], given: Mapping[str, Any], error: type[SettingsError]
) -> tuple[dict[str, Any], set[str]]:
    kinds = _field_types(cls)
    fmt: Callable[[str], str] = getattr(cls, "settings_label", staticmethod(lambda name: name))
    values: dict[str, Any] = {}
    used: set[str] = set()
    for f in dataclasses.fields(cls):
        kind = kinds[f.name]
        if dataclasses.is_dataclass(kind) and isinstance(kind, type):
            nested, nested_used = _values(kind, source, given, error)
            values[f.name] = kind(**nested)
            used |= nested_used
            continue
        if f.name in given:
            values[f.name] = given[f.name]
            used.add(f.name)
            continue
        for name in f.metadata.get(NAMES, ()):
            raw = source.get(name)
            if raw is None or (isinstance(raw, str) and raw.strip() == ""):
                continue
            try:
                values[f.name] = parse_value(kind, raw, fmt(name))
            except SettingsError as exc:
                raise error(str(exc)) from None
            break
    return values, used


def override(settings: T, **changes: Any) -> T:
    """A validated copy with some fields replaced (``None`` = unchanged); nested settings take the
    changes named like their own fields."""
    given = {k: v for k, v in changes.items() if v is not None}
    own: dict[str, Any] = {}
    for f in dataclasses.fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            inner = {k: given.pop(k) for k in list(given) if k in {g.name for g in dataclasses.fields(value)}}
            if inner:
                own[f.name] = override(value, **inner)
        elif f.name in given:
            own[f.name] = given.pop(f.name)
    if given:
        error: type[SettingsError] = getattr(type(settings), "settings_error", SettingsError)
        raise error(f"unknown setting(s): {', '.join(sorted(given))}")
    return dataclasses.replace(settings, **own)  # type: ignore[type-var]


def describe(settings: Any) -> dict[str, Any]:
    """The settings as a dict for logs and ``/health``, secret fields masked."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[f.name] = describe(value)
        elif f.metadata.get(SECRET) and value:
            out[f.name] = "***"
        else:
            out[f.name] = value
    return out


def variables(cls: type[Any]) -> list[tuple[str, ...]]:
    """Every name ``cls`` (and its nested settings) reads, field by field: for docs and their tests."""
    kinds = _field_types(cls)
    out: list[tuple[str, ...]] = []
    for f in dataclasses.fields(cls):
        kind = kinds[f.name]
        if dataclasses.is_dataclass(kind) and isinstance(kind, type):
            out += variables(kind)
        elif f.metadata.get(NAMES):
            out.append(tuple(f.metadata[NAMES]))
    return out
