"""POST /api/v1/images/generations: hold n images, call the upstream, charge the images returned.

Priced per image (by size where the catalog has a size table). The hold covers all ``n``; the
charge counts the images that actually came back; a failure before any image releases it all.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from tokenhub.billing.bill import Bill
from tokenhub.billing.ledger import Hold
from tokenhub.catalog.model import Model
from tokenhub.digits import whole_number
from tokenhub.directory import KeyInfo
from tokenhub.errors import GatewayError, InvalidRequest
from tokenhub.money import usd_number
from tokenhub.providers.base import redacted
from tokenhub.providers.media.base import GeneratedImage, ImageAdapter, ImageJob
from tokenhub.providers.upstream_http import fetch
from tokenhub.request_keys import REQUEST_ID
from tokenhub.upstream import Route

if TYPE_CHECKING:  # the gateway wires the relay in: a type only, never an import cycle
    from tokenhub.gateway import Gateway

MAX_N = 10


def parse_image_job(payload: Any, model: Model) -> ImageJob:
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object")
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("'prompt' is required: a description of the image", param="prompt")
    n = payload.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise InvalidRequest(f"'n' must be a whole number from 1 to {MAX_N}", param="n")
    sizes = [str(s) for s in (model.image or {}).get("sizes") or []]
    size = payload.get("size")
    if size is not None and (not isinstance(size, str) or (sizes and size not in sizes and not _is_pixels(size))):
        allowed = ", ".join(sizes) + " or WIDTHxHEIGHT" if sizes else "WIDTHxHEIGHT"
        raise InvalidRequest(f"'size' must be one of {allowed} for {model.id}", param="size")
    response_format = payload.get("response_format", "url")
    if response_format not in ("url", "b64_json"):
        raise InvalidRequest("'response_format' must be 'url' or 'b64_json'", param="response_format")
    images = payload.get("image") or []
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
        raise InvalidRequest("'image' must be a URL or a list of URLs", param="image")
    return ImageJob(prompt.strip(), n, size, response_format, tuple(images))


def _is_pixels(size: str) -> bool:
    width, _, height = (whole_number(side, 5) for side in size.lower().partition("x"))
    return width is not None and height is not None and 64 <= width <= 8192 and 64 <= height <= 8192


def price_per_image(model: Model, size: str | None) -> int:
    pricing = model.pricing
    if size and size in pricing.per_image_by_size:
        return pricing.per_image_by_size[size]
    if pricing.per_image is not None:
        return pricing.per_image
    if pricing.per_image_by_size:
        return max(pricing.per_image_by_size.values())
    raise InvalidRequest(f"{model.id} has no per-image price; the operator must set one", param="model")


async def generate_images(
    request: web.Request, gw: Gateway, key: KeyInfo, model: Model, route: Route, adapter: ImageAdapter, job: ImageJob
) -> web.Response:
    price = price_per_image(model, job.size)
    hold = Hold(request[REQUEST_ID], key.user_id, key.id, price * job.n, model.id, endpoint="image",
                channel_id=route.channel.id, upstream_model=route.upstream_id, budgets=key.budgets)  # fmt: skip
    async with Bill(gw.ledger, hold) as bill:
        try:
            images = (await _generate(gw, adapter, route, job))[: job.n]
        except GatewayError as err:
            bill.error = redacted(err, route.channel).message
            raise
        bill.status, bill.cost = "ok", price * len(images)
        data = [{"url": i.url} if job.response_format == "url" else {"b64_json": i.b64_json} for i in images]
        return web.json_response(
            {"created": int(time.time()), "data": data, "usage": {"generated_images": len(images), "cost": usd_number(bill.cost)}},
            dumps=_dumps,
        )


async def _generate(gw: Gateway, adapter: ImageAdapter, route: Route, job: ImageJob) -> list[GeneratedImage]:
    """The images of every upstream call the job takes (in parallel); the first failure when none came."""
    calls = adapter.build_request(job, route.upstream_id, route.channel)
    results = await asyncio.gather(*(fetch(gw.http, call) for call in calls), return_exceptions=True)
    images: list[GeneratedImage] = []
    failures: list[GatewayError] = []
    for result in results:
        if isinstance(result, GatewayError):
            failures.append(result)
        elif isinstance(result, BaseException):
            raise result
        else:
            code, body, retry_after = result
            if code != 200:
                failures.append(adapter.error(code, body, route.channel, retry_after))
            else:
                images.extend(adapter.parse_response(body))
    if not images:
        raise failures[0] if failures else InvalidRequest("the upstream returned no image for this prompt", code="no_image")
    return images


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()
