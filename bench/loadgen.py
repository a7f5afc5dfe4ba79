"""Closed-loop HTTP load generator (aiohttp client on uvloop), one process.

CONCURRENCY workers each keep one keep-alive connection busy: POST, read the whole answer,
repeat.  After WARMUP seconds a DURATION-second window is measured: only requests that
complete inside it count.  For streams, TTFB is the time from sending the request to the
first body bytes (the first SSE chunk); total is until the end of the body.

With ``--cpu-pid PID`` (repeatable) it reads utime+stime of each PID from /proc at the start
and end of the measured window, so the caller gets the server's CPU time spent in exactly that
window.

Prints one JSON object on stdout.  Used by bench/run.py for the streaming runs, and for the
non-streaming runs when wrk is missing (``--loadgen python``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import aiohttp
import orjson
import uvloop

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def pct(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


async def run(args: argparse.Namespace) -> dict:
    body = args.body.encode()
    stream = bool(orjson.loads(body).get("stream"))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {args.key}"}
    connector = aiohttp.TCPConnector(limit=args.concurrency, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    measuring = False
    stop = False
    lat: list[float] = []
    ttfb: list[float] = []
    ok = 0
    errors: dict[str, int] = {}
    window = [0.0, 0.0]

    def error(kind: str) -> None:
        if measuring:
            errors[kind] = errors.get(kind, 0) + 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal ok
            post = session.post
            while not stop:
                t0 = time.perf_counter()
                try:
                    async with post(args.url, data=body, headers=headers) as r:
                        if stream:
                            first = await r.content.readany()
                            t1 = time.perf_counter()
                            tail = first
                            while True:
                                chunk = await r.content.readany()
                                if not chunk:
                                    break
                                tail = chunk
                            good = r.status == 200 and tail.endswith(b"data: [DONE]\n\n")
                        else:
                            data = await r.read()
                            t1 = 0.0
                            good = r.status == 200 and b'"choices"' in data
                        status = r.status
                except Exception as e:  # noqa: BLE001 - every failure is counted, by kind
                    error(type(e).__name__)
                    await asyncio.sleep(0.01)
                    continue
                t2 = time.perf_counter()
                if measuring and t2 <= window[1]:
                    if good:
                        ok += 1
                        lat.append(t2 - t0)
                        if stream:
                            ttfb.append(t1 - t0)
                    else:
                        error(f"status_{status}" if status != 200 else "bad_body")

        tasks = [asyncio.create_task(worker()) for _ in range(args.concurrency)]
        await asyncio.sleep(args.warmup)
        cpu0 = [cpu_seconds(p) for p in args.cpu_pid]
        window[0] = time.perf_counter()
        window[1] = window[0] + args.duration
        measuring = True
        await asyncio.sleep(args.duration)
        cpu1 = [cpu_seconds(p) for p in args.cpu_pid]
        stop = True
        await asyncio.wait(tasks, timeout=args.timeout)
        for t in tasks:
            t.cancel()
    lat.sort()
    ttfb.sort()
    ms = lambda v: None if v is None else round(v * 1000, 3)  # noqa: E731
    out = {
        "requests": ok, "duration_s": args.duration, "rps": ok / args.duration,
        "errors": sum(errors.values()), "error_kinds": errors,
        "p50_ms": ms(pct(lat, 50)), "p99_ms": ms(pct(lat, 99)),
        "cpu_s": {str(p): round(b - a, 3) for p, a, b in zip(args.cpu_pid, cpu0, cpu1)},
    }
    if stream:
        out["ttfb_p50_ms"] = ms(pct(ttfb, 50))
        out["ttfb_p99_ms"] = ms(pct(ttfb, 99))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", default="sk-bench")
    ap.add_argument("--body", required=True, help="the JSON request body (\"stream\": true for SSE)")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--cpu-pid", type=int, action="append", default=[])
    args = ap.parse_args()
    uvloop.install()
    result = asyncio.run(run(args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
