"""The console's sign-in sessions: a random id in a cookie, and what it stands for kept in this process's memory.

Nothing about a session reaches the disk: the server keeps session id -> (the token's SHA-256 digest, a CSRF
token, times). The role and name are asked of the token store on every page, so a token revoked from the
token file (or the file made readable by others) ends its sessions at once; a restart signs everyone out.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from fastapi import Request, Response

SESSION_COOKIE = "lethe_console"
SIGN_IN_COOKIE = "lethe_console_sign_in"  # the sign-in form's CSRF value, before there is a session
COOKIE_PATH = "/console"
IDLE = timedelta(minutes=30)
LONGEST = timedelta(hours=8)
MAX_SESSIONS = 10_000  # a flood of sign-ins drops the oldest sessions rather than the server's memory


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Session:
    """One signed-in browser: whose token, the CSRF token of its forms, and when it began and was last seen."""

    id: str
    token_digest: str
    csrf: str
    started: datetime = field(default_factory=_now)
    seen: datetime = field(default_factory=_now)

    def expired(self, now: datetime) -> bool:
        return now - self.seen > IDLE or now - self.started > LONGEST

    def csrf_matches(self, sent: str | None) -> bool:
        """Whether a form's hidden CSRF field holds this session's token (compared in constant time)."""
        return bool(sent) and hmac.compare_digest(sent.encode(), self.csrf.encode())


class SessionStore:
    """Sessions by id, in memory only; thread-safe (sync pages run in a thread pool)."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def start(self, token_digest: str) -> Session:
        """A new session for the holder of a token with this digest."""
        session = Session(id=secrets.token_urlsafe(32), token_digest=token_digest, csrf=secrets.token_urlsafe(32))
        with self._lock:
            now = _now()
            for sid in [sid for sid, s in self._sessions.items() if s.expired(now)]:
                del self._sessions[sid]
            while len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[min(self._sessions, key=lambda sid: self._sessions[sid].seen)]
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id (and mark it seen), or None."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            now = _now()
            if session is None:
                return None
            if session.expired(now):
                del self._sessions[session_id]
                return None
            session.seen = now
            return session

    def end(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)


def secure_cookies(request: Request) -> bool:
    """Cookies are `Secure` when the console is served over TLS (directly, or by a proxy uvicorn trusts)."""
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
    """An HttpOnly, SameSite=Strict cookie for the console's paths only."""
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=secure_cookies(request))


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure_cookies(request))
