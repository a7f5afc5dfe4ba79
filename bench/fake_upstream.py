"""A minimal, fast fake OpenAI upstream for the benchmark (aiohttp + uvloop).

POST /v1/chat/completions (any path ending in /chat/completions, in fact):

* non-stream: a fixed small ``chat.completion`` JSON with ``usage``;
* ``"stream": true``: an OpenAI SSE stream — role chunk, 20 content chunks, a finish chunk,
  a ``choices: []`` usage chunk when ``stream_options.include_usage`` is true (every other
  chunk then carries ``"usage": null``, as OpenAI does), and ``data: [DONE]``.

Every byte is precomputed at start; a request costs one orjson.loads of the body.  With
``--chunk-delay 0`` (the default) the whole stream goes out in one write; with a delay each
chunk is written and flushed separately, ``--chunk-delay`` seconds apart.  ``--obfuscation``
ends every chunk with OpenAI's own padding (``"obfuscation": "..."``, which api.openai.com sends
since 2025 unless ``stream_options.include_obfuscation`` is false; other OpenAI-protocol providers
send none, nor does this fake by default).

Run: ``python bench/fake_upstream.py --port 9001 [--chunk-delay 0.01] [--obfuscation]``
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
import uvloop
from aiohttp import web

MODEL = "gpt-4.1"
CREATED = 1_700_000_000
CONTENT_CHUNKS = 20
WORDS = "Hello! This is a fake reply from the benchmark upstream, kept short and cheap to send over".split()
PROMPT_TOKENS = 12


def _word(i: int) -> str:
    w = WORDS[i % len(WORDS)]
    return w if i == CONTENT_CHUNKS - 1 else w + " "


def _build(obfuscation: bool = False) -> tuple[bytes, list[bytes], list[bytes]]:
    text = "".join(_word(i) for i in range(CONTENT_CHUNKS))
    usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": CONTENT_CHUNKS,
             "total_tokens": PROMPT_TOKENS + CONTENT_CHUNKS,
             "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    body = orjson.dumps({
        "id": "chatcmpl-bench0001", "object": "chat.completion", "created": CREATED, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None,
                                             "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": usage, "service_tier": "default", "system_fingerprint": "fp_bench",
    })

    def chunks(include_usage: bool) -> list[bytes]:
        def chunk(delta: dict, finish: str | None = None) -> dict:
            c = {"id": "chatcmpl-bench0001", "object": "chat.completion.chunk", "created": CREATED,
                 "model": MODEL, "service_tier": "default", "system_fingerprint": "fp_bench",
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if include_usage:
                c["usage"] = None
            return c

        def padded(c: dict, seq: int) -> dict:
            return {**c, "obfuscation": "Zq8xWv3kLm2Np"[: 1 + seq % 12]} if obfuscation else c

        out = [chunk({"role": "assistant", "content": "", "refusal": None})]
        out += [chunk({"content": _word(i)}) for i in range(CONTENT_CHUNKS)]
        out.append(chunk({}, "stop"))
        if include_usage:
            out.append({"id": "chatcmpl-bench0001", "object": "chat.completion.chunk", "created": CREATED,
                        "model": MODEL, "service_tier": "default", "system_fingerprint": "fp_bench",
                        "choices": [], "usage": usage})
        lines = [b"data: " + orjson.dumps(padded(c, seq)) + b"\n\n" for seq, c in enumerate(out)]
        lines.append(b"data: [DONE]\n\n")
        return lines

    return body, chunks(False), chunks(True)


BODY, STREAM_PLAIN, STREAM_USAGE = _build()
STREAM_PLAIN_JOINED = b"".join(STREAM_PLAIN)
STREAM_USAGE_JOINED = b"".join(STREAM_USAGE)
JSON_HEADERS = {"Content-Type": "application/json", "x-request-id": "req_bench"}
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
               "x-request-id": "req_bench"}


def make_app(chunk_delay: float, obfuscation: bool = False) -> web.Application:
    stream_plain, stream_usage = (_build(True)[1:] if obfuscation else (STREAM_PLAIN, STREAM_USAGE))
    plain_joined, usage_joined = b"".join(stream_plain), b"".join(stream_usage)

    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            req = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return web.Response(status=400, body=b'{"error":{"message":"invalid JSON","type":"invalid_request_error"}}',
                                headers=JSON_HEADERS)
        if not req.get("stream"):
            return web.Response(body=BODY, headers=JSON_HEADERS)
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        resp = web.StreamResponse(headers=SSE_HEADERS)
        await resp.prepare(request)
        if chunk_delay <= 0:
            await resp.write(usage_joined if include_usage else plain_joined)
        else:
            for line in stream_usage if include_usage else stream_plain:
                await resp.write(line)
                await asyncio.sleep(chunk_delay)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9001)
    ap.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between stream chunks (default 0)")
    ap.add_argument("--obfuscation", action="store_true", help="OpenAI's padding in every chunk")
    args = ap.parse_args()
    uvloop.install()
    web.run_app(make_app(args.chunk_delay, args.obfuscation), host=args.host, port=args.port, access_log=None, print=None,
                backlog=1024)


if __name__ == "__main__":
    main()
