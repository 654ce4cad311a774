"""Sessions, CSRF tokens, login rate limiting and security headers of the console.

- **Sessions** are signed cookies (itsdangerous, HMAC keyed by the console's secret) holding the
  user's name and role, a CSRF token and nothing else; ``HttpOnly``, ``SameSite=Strict``, ``Secure``
  when served over https, ``Path=/``. A session is re-signed on every request and expires after
  ``idle`` seconds without one (OWASP Session Management Cheat Sheet: 15-30 min for sensitive
  applications; default 15 min). Logging out or a new secret ends every session.
- **CSRF**: every POST carries the session's token in the form field ``csrf_token``, compared in
  constant time (OWASP's synchronizer-token pattern); ``SameSite=Strict`` is the second layer.
  The login form has one too (an anonymous session), against login CSRF.
- **Logins** are limited per user name and per client address: after ``MAX_FAILURES`` failures
  within ``WINDOW`` seconds further attempts get 429 with ``Retry-After`` until the window passes
  (NIST SP 800-63B §5.2.2 asks a limit of at most 100 consecutive failures; we use 5 per 5 min).
- **Headers** on every answer: a CSP without inline script (``script-src 'self'``; htmx is a
  vendored file), no framing, no sniffing, no referrer, no caching of pages.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

__all__ = ["COOKIE", "HEADERS", "LoginLimiter", "Session", "SessionCodec", "csrf_ok"]

COOKIE = "verdict_console"
MAX_FAILURES = 5
WINDOW = 300.0
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True)
class Session:
    """What a session cookie says: who (empty for an anonymous session) and its CSRF token."""

    user: str
    role: str
    csrf: str

    @property
    def signed_in(self) -> bool:
        return bool(self.user)


class SessionCodec:
    """Signs and reads session cookies; a cookie older than ``idle`` seconds is refused."""

    def __init__(self, secret: str, idle: float = 900.0) -> None:
        self._s = URLSafeTimedSerializer(secret, salt="verdict-console-session")
        self.idle = idle

    def dump(self, session: Session) -> str:
        return self._s.dumps({"u": session.user, "r": session.role, "c": session.csrf})

    def load(self, cookie: str | None) -> Session | None:
        """The session in `cookie`, or None when absent, forged or idle too long."""
        if not cookie:
            return None
        try:
            data = self._s.loads(cookie, max_age=int(self.idle))
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        return Session(str(data.get("u", "")), str(data.get("r", "")), data["c"])

    @staticmethod
    def anonymous() -> Session:
        return Session("", "", secrets.token_urlsafe(32))

    @staticmethod
    def signed_in(user: str, role: str) -> Session:
        """A new session for `user` (a new CSRF token: no fixation from the anonymous one)."""
        return Session(user, role, secrets.token_urlsafe(32))


def csrf_ok(session: Session | None, token: object) -> bool:
    """Whether `token` (the form's ``csrf_token``) is the session's, compared in constant time."""
    return session is not None and isinstance(token, str) and bool(token) and hmac.compare_digest(session.csrf, token)


class LoginLimiter:
    """Failed logins per key (a user name, a client address) within a sliding window."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.max_failures, self.window, self._clock, self._max_keys = max_failures, window, clock, max_keys
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, *keys: str) -> float:
        """Seconds until a login for any of `keys` may be tried again (0: now)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                q = self._failures.get(key)
                while q and q[0] <= now - self.window:
                    q.popleft()
                if q is not None and len(q) >= self.max_failures:
                    wait = max(wait, q[0] + self.window - now)
        return wait

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) > self._max_keys:  # bounded memory under a spray of names
                self._failures = {k: q for k, q in self._failures.items() if q and q[-1] > now - self.window}
            for key in keys:
                self._failures.setdefault(key, deque(maxlen=self.max_failures)).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
