"""What authenticated the request a window key was issued for, and whether it still holds.

A page rendered for a signed-in browser issues keys checked against the socket's session
cookie. Single-page apps and mobile clients authenticate with a token instead (DRF's
``Authorization: Token …``, a JWT, a knox token) and open their socket with no cookie at all.
Their key records which credential issued it, so the socket can be refused, or closed, when
that credential is deleted or expires.

Keys are signed, not encrypted: anyone holding one can read it. A key therefore never holds
a credential, only a digest of it (of a DRF token's key, of a knox token's digest, of a
JWT's ``jti``) that names it without giving it away.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from django.apps import apps

#: The key is checked against the websocket's session (pages rendered by Django, and
#: single-page apps authenticated by the session cookie). Not written into the key.
SESSION = "session"
#: A DRF ``rest_framework.authtoken`` token: the key holds while the token exists.
TOKEN = "token"
#: A django-rest-knox token: while it exists and until its expiry.
KNOX = "knox"
#: A djangorestframework-simplejwt access token: until its ``exp``.
JWT = "jwt"
#: Any other authentication (HTTP Basic, a custom DRF class): bound to the user only (active,
#: password unchanged), like every key.
USER = "user"

KINDS = (SESSION, TOKEN, KNOX, JWT, USER)


@dataclass(frozen=True, slots=True)
class Credential:
    """What authenticated a key's request: ``kind``, a ``digest`` naming the credential,
    and when it ``expires`` (Unix seconds; None: when it is deleted)."""

    kind: str = SESSION
    digest: str = ""
    expires: float | None = None

    def to_payload(self) -> list[Any] | None:
        """The key's ``c`` field; None for session keys (the keys pages always had)."""
        if self.kind == SESSION:
            return None
        return [self.kind, self.digest, None if self.expires is None else int(self.expires)]

    @classmethod
    def from_payload(cls, value: Any) -> Credential:
        """Read the key's ``c`` field; raises ValueError for anything malformed."""
        if value is None:
            return _SESSION_CREDENTIAL  # immutable: one for every session key's window
        if not isinstance(value, list) or len(value) != 3:
            raise ValueError("malformed credential")
        kind, digest, expires = value
        if kind not in KINDS or kind == SESSION or not isinstance(digest, str):
            raise ValueError("malformed credential")
        if expires is not None and (not isinstance(expires, int | float) or isinstance(expires, bool)):
            raise ValueError("malformed credential")
        return cls(kind, digest, None if expires is None else float(expires))


_SESSION_CREDENTIAL = Credential()


def digest(kind: str, secret: str) -> str:
    """A short digest naming a credential without carrying it (tokens are long random
    strings: the digest cannot be turned back into one)."""
    return hashlib.sha256(f"floorchannels.{kind}:{secret}".encode()).hexdigest()[:24]


def describe(auth: Any, *, session: bool) -> Credential:
    """The credential of a request authenticated with ``auth`` (DRF's ``request.auth``).

    ``session``: the user came from the session cookie (Django's, or DRF's
    SessionAuthentication); ``auth`` is then ignored.
    """
    if session:
        return Credential(SESSION)
    if auth is None:
        return Credential(USER)
    if apps.is_installed("rest_framework.authtoken"):
        from rest_framework.authtoken.models import Token

        if isinstance(auth, Token):
            return Credential(TOKEN, digest(TOKEN, auth.key))
    if apps.is_installed("knox"):
        from knox.models import AuthToken

        if isinstance(auth, AuthToken):
            expires = auth.expiry.timestamp() if auth.expiry is not None else None
            return Credential(KNOX, digest(KNOX, auth.digest), expires)
    jwt = _jwt_claims(auth)
    if jwt is not None:
        jti, exp = jwt
        return Credential(JWT, digest(JWT, jti), exp)
    return Credential(USER)


def _jwt_claims(auth: Any) -> tuple[str, float] | None:
    """(jti, exp) of a simplejwt token, or None for anything else."""
    try:
        from rest_framework_simplejwt.tokens import Token as JWTToken
    except ImportError:
        return None
    if not isinstance(auth, JWTToken):
        return None
    payload = auth.payload
    # simplejwt names the claims in its settings (JTI_CLAIM); exp is the JWT standard's.
    from rest_framework_simplejwt.settings import api_settings as jwt_settings

    jti, exp = payload.get(jwt_settings.JTI_CLAIM), payload.get("exp")
    if not isinstance(exp, int | float):
        return None
    # A token without a jti is still bound by its expiry; its digest then names nothing.
    return str(jti or ""), float(exp)


def still_valid(credential: Credential, user: Any) -> str | None:
    """None while ``credential`` still authenticates ``user``, else the reason it does not.

    Synchronous (database queries for deletable tokens): call it from a thread. Expiry is
    checked when the key is read (:func:`floorchannels.windows.load_key`).
    """
    if credential.kind == TOKEN:
        from rest_framework.authtoken.models import Token

        keys = Token.objects.filter(user=user).values_list("key", flat=True)
        if not any(hmac.compare_digest(digest(TOKEN, key), credential.digest) for key in keys):
            return "the token this window key was issued for was deleted"
    elif credential.kind == KNOX:
        from knox.models import AuthToken

        digests = AuthToken.objects.filter(user=user).values_list("digest", flat=True)
        if not any(hmac.compare_digest(digest(KNOX, value), credential.digest) for value in digests):
            return "the token this window key was issued for was deleted"
    return None
