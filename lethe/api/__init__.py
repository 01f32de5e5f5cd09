"""Lethe's HTTP API (FastAPI): legal files requests, auditors read evidence, engineers ask about impact."""

from lethe.api.app import create_app
from lethe.api.auth import Caller, Role, TokenStore, create_token, default_token_path

__all__ = ["Caller", "Role", "TokenStore", "create_app", "create_token", "default_token_path"]
