"""Console sessions and CSRF tokens.

The session cookie is a signed, timestamped value (itsdangerous, HMAC-SHA256 with a key derived
from the gateway's secret) carrying a random session id, the user id (None before login) and the
user's ``session_epoch``. Every visitor gets one (anonymous until login) so that the login and
signup forms carry a CSRF token too; login issues a fresh session id (no fixation).

A signed-in session also has a row in ``console_sessions`` (the SHA-256 of its id, never the id),
made at login and looked up on every console page: logout deletes it, "sign out everywhere" deletes
every row of the account, so a copied cookie stops working at once in every process sharing the
database. It expires after 7 days; a password change bumps the epoch and deletes the account's
other rows.

A CSRF token is HMAC-SHA256(csrf key, session id): bound to the session, never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, insert, select

from tokenhub.storage import AsyncConnection
from tokenhub.storage.engine import utc_now
from tokenhub.storage.tables import console_sessions

COOKIE = "th_session"
MAX_AGE = 7 * 24 * 3600


@dataclass(frozen=True)
class Session:
    sid: str
    user_id: int | None = None
    epoch: int = 0


def is_https(request: web.Request) -> bool:
    """Served over https, directly or behind a proxy that says so (only ever tightens the cookie)."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower() == "https"


class SessionCodec:
    def __init__(self, session_key: bytes, csrf_key: bytes) -> None:
        self._serializer = URLSafeTimedSerializer(
            session_key, salt="tokenhub.console.session", signer_kwargs={"digest_method": hashlib.sha256}
        )
        self._csrf_key = csrf_key

    @staticmethod
    def new(user_id: int | None = None, epoch: int = 0) -> Session:
        return Session(secrets.token_urlsafe(18), user_id, epoch)

    def dumps(self, session: Session) -> str:
        return self._serializer.dumps([session.sid, session.user_id, session.epoch])

    def loads(self, value: str | None) -> Session | None:
        if not value:
            return None
        try:
            sid, user_id, epoch = self._serializer.loads(value, max_age=MAX_AGE)
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(sid, str) or not isinstance(epoch, int) or not (user_id is None or isinstance(user_id, int)):
            return None
        return Session(sid, user_id, epoch)

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._csrf_key, session.sid.encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), str(token))

    def set_cookie(self, request: web.Request, response: web.StreamResponse, session: Session) -> None:
        response.set_cookie(
            COOKIE, self.dumps(session), max_age=MAX_AGE, path="/", httponly=True, samesite="Lax", secure=is_https(request)
        )


def _id_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


async def open_session(conn: AsyncConnection, session: Session) -> None:
    """Record a signed-in session (and forget expired ones, of anybody)."""
    assert session.user_id is not None
    now = utc_now()
    await conn.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now))
    await conn.execute(
        insert(console_sessions).values(
            id_hash=_id_hash(session.sid), user_id=session.user_id, created_at=now, expires_at=now + timedelta(seconds=MAX_AGE)
        )
    )


async def session_is_open(conn: AsyncConnection, session: Session) -> bool:
    found = await conn.scalar(
        select(console_sessions.c.user_id).where(
            console_sessions.c.id_hash == _id_hash(session.sid),
            console_sessions.c.user_id == session.user_id,
            console_sessions.c.expires_at > utc_now(),
        )
    )
    return found is not None


async def end_session(conn: AsyncConnection, session: Session) -> None:
    await conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == _id_hash(session.sid)))


async def end_all_sessions(conn: AsyncConnection, user_id: int) -> None:
    """Every console session of the account, in every browser and process."""
    await conn.execute(delete(console_sessions).where(console_sessions.c.user_id == user_id))
