"""The board's sign-in sessions: a signed, expiring reference to a key, never the key itself. Pure.

    cookie = issue("sqm_1a2b_secret", secret=b"...", now=now, ttl_s=90 * 86400)
    fingerprint = verify(cookie, secret=b"...", now=now)   # the key's SHA-256, or None

The cookie holds the SHA-256 of the key (what the key store keeps, `api.keys.hash_key`), when it
expires, and an HMAC of both with the API's session secret (`SQM_SESSION_SECRET`). The API looks the
fingerprint up among the keys and tokens at every request, so a revoked key ends its sessions within
the keys' refresh (10 s); a changed secret ends every session. Someone who reads the cookie learns no
key, and cannot make a session for another key or a later expiry.

>>> s = issue("k" * 20, secret=b"x" * 32, now=1000.0, ttl_s=60)
>>> verify(s, secret=b"x" * 32, now=1059.0) == hash_key("k" * 20)
True
>>> verify(s, secret=b"x" * 32, now=1061.0), verify(s, secret=b"y" * 32, now=1000.0), verify("sqm_key", b"x", 0)
(None, None, None)
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "s1"


def hash_key(key: str) -> str:
    """A key's fingerprint (SHA-256, hex): what the key store keeps (api/keys.py) and a session holds."""
    return hashlib.sha256(key.encode()).hexdigest()


def _mac(secret: bytes, fingerprint: str, expires: int) -> str:
    return hmac.new(secret, f"{PREFIX}.{fingerprint}.{expires}".encode(), hashlib.sha256).hexdigest()


def issue(key: str, *, secret: bytes, now: float, ttl_s: float) -> str:
    """A session for `key` (an API key or a token), valid `ttl_s` from `now`."""
    return reissue(hash_key(key), secret=secret, now=now, ttl_s=ttl_s)


def reissue(fingerprint: str, *, secret: bytes, now: float, ttl_s: float) -> str:
    """A session for the key of `fingerprint` (from a verified session), valid `ttl_s` from `now`."""
    expires = int(now + ttl_s)
    return f"{PREFIX}.{fingerprint}.{expires}.{_mac(secret, fingerprint, expires)}"


def verify(cookie: str, secret: bytes, now: float) -> str | None:
    """The key fingerprint of a valid, unexpired session; None for anything else."""
    parts = cookie.split(".")
    if len(parts) != 4 or parts[0] != PREFIX or not parts[2].isdigit():
        return None
    _, fingerprint, expires, mac = parts
    if not hmac.compare_digest(mac, _mac(secret, fingerprint, int(expires))) or int(expires) <= now:
        return None
    return fingerprint


def expires_at(cookie: str) -> int | None:
    parts = cookie.split(".")
    return int(parts[2]) if len(parts) == 4 and parts[2].isdigit() else None
