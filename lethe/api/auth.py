"""Bearer tokens with one role each, kept on disk only as SHA-256 digests.

The token file (default `<state_dir>/api-tokens.json`, mode 0600) maps sha256(token) hex to
{role, name, created_at}; the token itself is shown once, when it is created, and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path

from erasure.errors import ConfigurationError
from lineage.local_files import write_private_text
from lethe.errors import InvalidArgumentError

TOKEN_FILE_NAME = "api-tokens.json"


class Role(StrEnum):
    """Who may call what: each route admits exactly one role."""

    LEGAL = "legal"        # files erasure requests, watches deadlines
    AUDITOR = "auditor"    # reads the register, attestations, reports, keys and the log
    ENGINEER = "engineer"  # asks blast-radius and preflight questions


@dataclass(frozen=True)
class Caller:
    """The holder of a valid token: its role and the name it was created under (never the token)."""

    role: Role
    name: str


def default_token_path(state_dir: Path) -> Path:
    return Path(state_dir) / TOKEN_FILE_NAME


def token_digest(token: str) -> str:
    """The SHA-256 hex digest a token is kept under."""
    return _digest(token)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _read_entries(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); restore it or "
                                 "delete it and create new tokens with `lethe api token create`") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} must hold a JSON object: sha256 hex -> {{role, name, created_at}}")
    for digest, entry in data.items():
        well_formed = (len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
                       and isinstance(entry, dict) and entry.get("role") in {r.value for r in Role}
                       and isinstance(entry.get("name"), str))
        if not well_formed:
            raise ConfigurationError(f"{path}: entry {digest[:16]!r}… is not a sha256 hex digest mapped to "
                                     f"{{role: one of {', '.join(r.value for r in Role)}, name, created_at}}")
    return data


def _write_entries(path: Path, entries: dict[str, dict]) -> None:
    """Write the token file owner-only (0600) through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_text(path, json.dumps(entries, indent=1, sort_keys=True) + "\n")


def create_token(path: Path, role: Role | str, name: str, *, replace: bool = False) -> str:
    """Create a token of `role`, store its digest under `name`, and return the token (shown only once);
    `replace`: revoke the tokens already stored under that name (the demo's, made again on each run)."""
    role = Role(role)
    name = name.strip()
    if not name:
        raise InvalidArgumentError("a token needs a name (who or what holds it, e.g. 'privacy-ops')")
    path = Path(path)
    entries = _read_entries(path) if path.exists() else {}
    if replace:
        entries = {digest: entry for digest, entry in entries.items() if entry["name"] != name}
    token = secrets.token_urlsafe(32)
    entries[_digest(token)] = {"role": role.value, "name": name,
                               "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    _write_entries(path, entries)
    return token


def _refuse_open_mode(path: Path, mode: int) -> None:
    if mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_IRGRP | stat.S_IROTH):
        raise ConfigurationError(f"{path} is readable or writable by other users; `chmod 600 {path}` "
                                 "(no token is accepted until then)")


class TokenStore:
    """The valid tokens' digests and roles; rereads the file when it changes (revocation)."""

    def __init__(self, entries: dict[str, dict], path: Path | None = None):
        self._entries = {digest: Caller(Role(e["role"]), e["name"]) for digest, e in entries.items()}
        self._path, self._stamp = path, self._file_stamp(path)

    @classmethod
    def load(cls, path: Path) -> TokenStore:
        """Read a token file; refuses a missing one, or one that others may write."""
        path = Path(path)
        if not path.is_file():
            raise ConfigurationError(f"no API token file at {path}: create a token first with "
                                     "`lethe api token create --role legal|auditor|engineer --name NAME`")
        _refuse_open_mode(path, path.stat().st_mode)
        return cls(_read_entries(path), path)

    @staticmethod
    def _file_stamp(path: Path | None) -> tuple[int, int, int, int] | None:
        if path is None:
            return None
        info = path.stat()
        return info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_mode

    def _refresh(self) -> None:
        if self._path is None:
            return
        try:
            stamp = self._file_stamp(self._path)
        except FileNotFoundError:
            self._entries, self._stamp = {}, None  # the file was removed: every token is revoked
            return
        _refuse_open_mode(self._path, stamp[3])  # on every call: a `chmod 644` while serving stops all tokens
        if stamp != self._stamp:
            fresh = TokenStore.load(self._path)
            self._entries, self._stamp = fresh._entries, fresh._stamp

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str) -> Caller | None:
        """The caller a token belongs to, or None; compares every digest in constant time."""
        return self.caller_of_digest(_digest(token))

    def caller_of_digest(self, digest: str) -> Caller | None:
        """The caller whose token has this SHA-256 digest, if it is still valid (the web console's sessions
        keep the digest, never the token, and ask again on every page: a revoked token ends its sessions)."""
        self._refresh()
        found = None
        for known, caller in self._entries.items():  # no early exit: the time does not depend on the match
            if hmac.compare_digest(known, digest):
                found = caller
        return found
