"""Bearer tokens for local endpoints that other hosts can reach.

An endpoint bound to loopback (``CHURN_BIND_HOST`` 127.0.0.1, the default) answers anyone on the machine, as
before. Bound for other hosts (any other ``CHURN_BIND_HOST``), or with ``CHURN_ENDPOINT_TOKENS=1`` (which forces
tokens on loopback too: the tests use it, never binding 0.0.0.0), every route but ``/ping`` needs
``Authorization: Bearer <token>``; without it, or with a wrong one, the answer is 401 with a JSON error body.

The token an admin is given (``Platform.endpoint_token``, shown once) is kept only as its SHA-256, in the catalog
and in the endpoint's folder (``token.sha256``, 0600), which the server reads again when it changes: a rotated
token replaces the old one at once. The platform's own calls (``Platform.invoke`` and the scoring built on it)
carry the endpoint's internal secret (``internal.token``, 0600, made on first use by whichever side needs it).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from pathlib import Path

TOKEN_HASH, INTERNAL = "token.sha256", "internal.token"
FORCE_ENV = "CHURN_ENDPOINT_TOKENS"


def required(host: str, env: dict | None = None) -> bool:
    """Whether an endpoint bound to ``host`` needs a bearer token."""
    forced = ((os.environ if env is None else env).get(FORCE_ENV) or "").strip().lower() in ("1", "true", "yes", "on")
    if forced:
        return True
    if host.strip().lower() == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:
        return True  # a host name other hosts may resolve


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _write_private(path: Path, text: str, replace: bool) -> None:
    """Write ``text`` to ``path`` (0600) atomically; with ``replace=False`` an existing file wins."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
    finally:
        tmp.unlink(missing_ok=True)


def write_hash(folder: Path, sha256: str) -> None:
    """The endpoint's token is now the one whose SHA-256 is ``sha256`` (the old one stops working)."""
    _write_private(Path(folder) / TOKEN_HASH, sha256, replace=True)


def internal_secret(folder: Path) -> str:
    """The platform's own secret for this endpoint (made on first use)."""
    path = Path(folder) / INTERNAL
    if not path.exists():
        _write_private(path, new_token(), replace=False)
    return path.read_text(encoding="utf-8").strip()


def platform_headers(folder: Path, host: str) -> dict[str, str]:
    """The header the platform's own requests carry ({} when the endpoint needs no token)."""
    return {"Authorization": f"Bearer {internal_secret(folder)}"} if required(host) else {}


class TokenGate:
    """The server's check: ``refusal(headers)`` is "" for a request that may pass, else why it may not."""

    def __init__(self, folder: Path, host: str) -> None:
        self.folder, self.required = Path(folder), required(host)
        self._seen: tuple = ()
        self._hashes: tuple[str, ...] = ()

    def _accepted(self) -> tuple[str, ...]:
        stamps = []
        for name in (TOKEN_HASH, INTERNAL):
            try:
                st = (self.folder / name).stat()
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamps.append(None)
        if tuple(stamps) != self._seen:
            hashes = []
            token_hash = self.folder / TOKEN_HASH
            if stamps[0] is not None:
                hashes.append(token_hash.read_text(encoding="utf-8").strip())
            hashes.append(digest(internal_secret(self.folder)))
            self._seen, self._hashes = tuple(stamps), tuple(h for h in hashes if h)
        return self._hashes

    def refusal(self, headers) -> str:
        if not self.required:
            return ""
        raw = dict(headers).get(b"authorization", b"").decode("latin-1").strip()
        scheme, _, token = raw.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return ("this endpoint needs a bearer token: send 'Authorization: Bearer <token>' (an admin issues "
                    "one with the Python API: p.endpoint_token(<endpoint>)).")
        offered = digest(token.strip())
        if not any(hmac.compare_digest(offered, accepted) for accepted in self._accepted()):
            return "the bearer token is not valid for this endpoint (it may have been rotated); ask an admin for it."
        return ""
