"""Responses API answers stored for their account (``store: true``, the default, as at OpenAI).

Each row keeps the response object, the input items of its request, and the conversation up to and
including it (``context``), so that ``previous_response_id`` is one read by (id, account). Another
account's id reads as missing: the API answers 404 for both. Rows live 30 days (``RETENTION``);
reads ignore expired rows and each write deletes a few of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import delete, insert, select

from tokenhub.storage import AsyncConnection
from tokenhub.storage.engine import utc_now
from tokenhub.storage.tables import stored_responses

RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class StoredResponse:
    id: str
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    context: list[dict[str, Any]]


async def save_response(conn: AsyncConnection, user_id: int, response: dict[str, Any], input_items: list[dict[str, Any]],
                        context: list[dict[str, Any]]) -> None:  # fmt: skip
    now = utc_now()
    expired = select(stored_responses.c.id).where(stored_responses.c.expires_at < now).limit(100)
    await conn.execute(delete(stored_responses).where(stored_responses.c.id.in_(expired.scalar_subquery())))
    await conn.execute(
        insert(stored_responses).values(
            id=response["id"], user_id=user_id, model=str(response.get("model") or ""), response=orjson.dumps(response).decode(),
            input_items=orjson.dumps(input_items).decode(), context=orjson.dumps(context).decode(),
            created_at=now, expires_at=now + RETENTION,
        )
    )  # fmt: skip


async def load_response(conn: AsyncConnection, user_id: int, response_id: str) -> StoredResponse | None:
    row = (
        await conn.execute(
            select(stored_responses).where(
                stored_responses.c.id == response_id, stored_responses.c.user_id == user_id, stored_responses.c.expires_at >= utc_now()
            )
        )
    ).first()
    if row is None:
        return None
    return StoredResponse(row.id, orjson.loads(row.response), orjson.loads(row.input_items), orjson.loads(row.context))


async def delete_response(conn: AsyncConnection, user_id: int, response_id: str) -> bool:
    done = await conn.execute(
        delete(stored_responses).where(stored_responses.c.id == response_id, stored_responses.c.user_id == user_id)
    )
    return bool(done.rowcount)
