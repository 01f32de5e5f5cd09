"""The registry of remedy methods: names validated, duplicates refused, configs parsed with clear errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from unlearning.errors import RemedyError
from unlearning.methods.base import MethodConfig, MethodKind

__all__ = ["MethodSpec", "get_method", "method_names", "parse_config", "register_method"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
_REGISTRY: dict[str, "MethodSpec"] = {}


@dataclass(frozen=True)
class MethodSpec:
    """A method as registered: name, kind, config class and the function that runs it."""

    name: str
    kind: MethodKind
    config_class: type[MethodConfig]
    run: object  # Callable[[MethodConfig, RemedyInput, StepCallback | None], RemedyOutcome]


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method; refuses a bad name, a duplicate, or a config class that is not a MethodConfig."""
    if not isinstance(spec.name, str) or not _NAME.match(spec.name):
        raise RemedyError(f"method name {spec.name!r} must be lower_snake_case, 2-40 characters")
    if spec.name in _REGISTRY:
        raise RemedyError(f"a method named {spec.name!r} is already registered")
    if not (isinstance(spec.config_class, type) and issubclass(spec.config_class, MethodConfig)):
        raise RemedyError(f"method {spec.name!r}: its config class must subclass MethodConfig")
    if not isinstance(spec.kind, MethodKind):
        raise RemedyError(f"method {spec.name!r}: kind must be a MethodKind, got {spec.kind!r}")
    _REGISTRY[spec.name] = spec
    return spec


def _load_builtins() -> None:
    # Importing the modules registers them (each calls register_method once at import).
    from unlearning.methods import grad_diff, gradient_ascent, npo, retrain  # noqa: F401


def method_names() -> list[str]:
    """Names of every registered method, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_method(name: str) -> MethodSpec:
    """The registered method called `name`; an unknown name lists the known ones."""
    _load_builtins()
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
