"""Lethe's HTTP API (FastAPI): legal files requests, auditors read evidence, engineers ask about impact.

`create_app` is imported when first asked for: the CLI reads tokens and roles from here without loading the
routes (and, through them, Presidio and transformers), so `lethe --help` stays quick.
"""

from lethe.api.auth import Caller, Role, TokenStore, create_token, default_token_path

__all__ = ["Caller", "Role", "TokenStore", "create_app", "create_token", "default_token_path"]


def __getattr__(name: str):
    if name == "create_app":
        from lethe.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
