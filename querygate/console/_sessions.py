"""Console sessions: server-side, revocable, each mapped to the identity's token.

The browser holds only a random session id in an HttpOnly, SameSite cookie; the token it
stands for stays in this process's memory and never reaches the page or a URL. The identity
behind a session is checked against the directory on every request (``Console.viewer``), so
revoking a person ends their open sessions on the next request, whichever front door revoked
them. Sessions also end on sign-out, after ``IDLE_S`` without a request, and after ``MAX_AGE_S``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

COOKIE = "qg_console"
IDLE_S = 3600.0  # a session unused this long ends
MAX_AGE_S = 12 * 3600.0  # and none outlives a working day


@dataclass
class OidcTokens:
    """An OIDC sign-in's tokens, refreshed before the access token lapses."""

    issuer: str
    client_id: str
    expires_at: float  # seconds since the epoch
    refresh_token: str | None = None


@dataclass
class Session:
    token: str
    email: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    last_seen: float = field(default_factory=time.monotonic)
    oidc: OidcTokens | None = None

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


def _key(session_id: str) -> str:
    """Sessions are filed under a hash of their id: the store never holds a usable cookie."""
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Sessions of this process, by (hashed) id."""

    def __init__(self, *, idle_s: float = IDLE_S, max_age_s: float = MAX_AGE_S) -> None:
        self._sessions: dict[str, Session] = {}
        self.idle_s, self.max_age_s = idle_s, max_age_s

    def create(self, token: str, email: str, oidc: OidcTokens | None = None) -> tuple[str, Session]:
        """A new session (a new id every sign-in: no fixation); returns (cookie value, session)."""
        self._prune()
        session_id = secrets.token_urlsafe(32)
        session = Session(token, email, oidc=oidc)
        self._sessions[_key(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        key = _key(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.idle_s or now - session.created > self.max_age_s:
            del self._sessions[key]
            return None
        session.last_seen = now
        return session

    def end(self, session: Session) -> None:
        for key, value in list(self._sessions.items()):
            if value is session:
                del self._sessions[key]

    def end_for(self, email: str) -> int:
        """End every session of one person (offboarded from the console); returns how many."""
        gone = [k for k, s in self._sessions.items() if s.email == email]
        for key in gone:
            del self._sessions[key]
        return len(gone)

    def __len__(self) -> int:
        return len(self._sessions)

    def _prune(self) -> None:
        now = time.monotonic()
        for key, s in list(self._sessions.items()):
            if now - s.last_seen > self.idle_s or now - s.created > self.max_age_s:
                del self._sessions[key]
