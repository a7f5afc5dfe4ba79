"""Secrets sealed by an earlier release (Fernet tokens) are resealed when the gateway starts."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import openai
from sqlalchemy import func, select, update

from tests.conftest import UPSTREAM_KEY
from tests.support.harness import Harness
from tests.test_secrets_box import legacy_token
from tokenhub.config import normalize_database_url
from tokenhub.secrets_box import SecretBox
from tokenhub.storage import migrate
from tokenhub.storage.engine import create_engine
from tokenhub.storage.resealing import reseal
from tokenhub.storage.tables import channels, users

SECRET = "test-secret-key"  # the harness's TOKENHUB_SECRET_KEY


def legacy(plaintext: str, secret: str = SECRET) -> str:
    return legacy_token(secret, plaintext)


def test_a_gateway_started_on_legacy_secrets_reseals_them_and_calls_with_them(
    make_gateway: Callable[..., Harness], database_url: str, upstream_url: str, fake_openai: Any
):
    first = make_gateway(database_url)
    first.user("old@example.com")
    key = first.key("old@example.com")
    channel = first.channel("openai", upstream_url, api_key="sk-not-the-upstreams")
    user_id = first.read(lambda c: c.scalar(select(users.c.id).where(users.c.email == "old@example.com")))
    totp = legacy("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    first.write(lambda c: c.execute(update(channels).where(channels.c.id == channel["id"]).values(api_key_enc=legacy(UPSTREAM_KEY))))
    first.write(lambda c: c.execute(update(users).where(users.c.id == user_id).values(totp_secret=totp)))
    first.stop()

    second = make_gateway(database_url)  # a new release starting on the same database
    sealed_key = second.read(lambda c: c.scalar(select(channels.c.api_key_enc).where(channels.c.id == channel["id"])))
    sealed_totp = second.read(lambda c: c.scalar(select(users.c.totp_secret).where(users.c.id == user_id)))
    assert sealed_key.startswith("v2:") and sealed_totp.startswith("v2:")
    box = SecretBox(SECRET)
    assert box.decrypt(sealed_key) == UPSTREAM_KEY
    assert box.decrypt(sealed_totp) == "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

    client = openai.OpenAI(api_key=key, base_url=second.base_url, max_retries=0)
    client.chat.completions.create(model="openai/gpt-4.1", messages=[{"role": "user", "content": "hi"}])
    client.close()
    assert fake_openai.requests[-1].headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"  # the fake refuses any other key


def test_resealing_leaves_what_does_not_open_and_is_done_once(database_url: str):
    async def scenario() -> None:
        engine = create_engine(normalize_database_url(database_url))
        await migrate.upgrade(engine)
        box = SecretBox(SECRET)
        rows = {
            "ours-legacy": legacy("sk-one"),
            "another-key": legacy("sk-two", secret="another-secret"),
            "ours-new": box.encrypt("sk-three"),
        }
        async with engine.begin() as conn:
            for name, sealed in rows.items():
                await conn.execute(
                    channels.insert().values(name=name, provider="openai", base_url="http://127.0.0.1:9/v1", api_key_enc=sealed, created_at=func.now())
                )
        async with engine.begin() as conn:
            assert await reseal(conn, box) == 1
        async with engine.begin() as conn:
            assert await reseal(conn, box) == 0  # nothing left to do on the next start
            stored = dict((await conn.execute(select(channels.c.name, channels.c.api_key_enc))).all())
        await engine.dispose()
        assert stored["another-key"] == rows["another-key"]  # left for the directory to name
        assert stored["ours-new"] == rows["ours-new"]
        assert stored["ours-legacy"].startswith("v2:") and box.decrypt(stored["ours-legacy"]) == "sk-one"

    asyncio.run(scenario())
