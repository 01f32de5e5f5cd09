"""The registry of remedy methods: names validated, duplicates refused, configs parsed with clear errors.

Each method module calls `register_method` once, at import; `unlearning/methods/__init__.py` imports them
all. This module imports none of them, so a method and the registry never import each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from unlearning.errors import RemedyError
from unlearning.methods.base import MethodConfig, MethodKind, RemedyInput, RemedyOutcome, StepCallback

__all__ = ["MethodSpec", "get_method", "method_names", "parse_config", "register_method", "unregister_method"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
_REGISTRY: dict[str, "MethodSpec"] = {}


@dataclass(frozen=True)
class MethodSpec:
    """A method as registered: name, kind, config class and the function that runs it."""

    name: str
    kind: MethodKind
    config_class: type[MethodConfig]
    run: Callable[[MethodConfig, RemedyInput, StepCallback | None], RemedyOutcome]


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method; refuses a bad name, a duplicate, a config class that is not a MethodConfig, a bad kind
    or a run that cannot be called."""
    if not isinstance(spec, MethodSpec):
        raise RemedyError(f"register_method takes a MethodSpec, got {type(spec).__name__}")
    if not isinstance(spec.name, str) or not _NAME.match(spec.name):
        raise RemedyError(f"method name {spec.name!r} must be lower_snake_case, 2-40 characters")
    if spec.name in _REGISTRY:
        registered_by = getattr(_REGISTRY[spec.name].run, "__module__", "?")
        raise RemedyError(f"a method named {spec.name!r} is already registered (by {registered_by}); "
                          "give the new one another name")
    if not (isinstance(spec.config_class, type) and issubclass(spec.config_class, MethodConfig)):
        raise RemedyError(f"method {spec.name!r}: its config class must subclass MethodConfig, "
                          f"got {spec.config_class!r}")
    if not isinstance(spec.kind, MethodKind):
        raise RemedyError(f"method {spec.name!r}: kind must be a MethodKind, got {spec.kind!r}")
    if not callable(spec.run):
        raise RemedyError(f"method {spec.name!r}: run must be a function (config, remedy input, on_step), "
                          f"got {type(spec.run).__name__}")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_method(name: str) -> None:
    """Remove a method registered by `register_method` (a plugin's or a test's); an unknown name is an error."""
    if name not in _REGISTRY:
        raise RemedyError(f"no remedy method named {name!r} is registered")
    del _REGISTRY[name]


def method_names() -> list[str]:
    """Names of every registered method, sorted."""
    return sorted(_REGISTRY)


def get_method(name: str) -> MethodSpec:
    """The registered method called `name`; an unknown name lists the known ones."""
    if name not in _REGISTRY:
        raise RemedyError(f"unknown remedy method {name!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def parse_config(name: str, values: Mapping | None = None) -> MethodConfig:
    """The method's config from plain values, with a message that names each bad field and its range."""
    spec = get_method(name)
    try:
        return spec.config_class(**dict(values or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise RemedyError(f"bad config for method {name!r}: {problems}") from None
