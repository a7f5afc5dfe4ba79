"""Instructions per request, counted by valgrind's callgrind: an A/B that a shared machine's noise cannot move.

Timed runs on a shared VM move by more than a small change is worth (session 16's A/A pairs differed by
up to 10 % in requests per second). callgrind counts the instructions a process executes instead, which
do not depend on what else the machine is doing: runs of one commit here agreed within 1 % (c=16, 2,000
requests) to 5 % (c=1, 1,000); what still varies is how requests group, for the ledger and the loop, so
alternate the two sides and repeat.

The fake upstream, and the gateway (a fresh SQLite home, set up through the CLI as ``run.py`` does) or the
bare proxy under ``valgrind --tool=callgrind --instr-atstart=no``; a warmup; counting switched on for
``--requests`` requests at ``--concurrency`` (an aiohttp client in this process), off; then the
instructions per request and their split by shared object (the interpreter, SQLite, libc, ...).

Caveats: under valgrind the server runs ~50 times slower, so work driven by time (the ledger's checkpoint
every second, the disconnect sweep) weighs ~50 times more per request than at full speed; the kernel's
work (system calls, the network) is not counted at all. Compare two commits with it, not with wall time.

Run: ``python bench/instructions.py [--target gateway|bare-proxy] [--requests 1000] [--concurrency 1]
[--stream] [--obfuscation] [--keep callgrind.out]``; for an A/B, alternate ``PYTHONPATH=/path/to/worktree/src python bench/instructions.py ...``.
That runs the worktree's sources as Python; to count its compiled request path (a wheel's), build it in place
first, with mypy installed: ``cd /path/to/worktree/src && mypyc --ignore-missing-imports --follow-imports=silent``
and setup.py's ``COMPILED`` modules (without their ``src/``), which puts the extensions beside the sources.
Needs valgrind (``apt-get install -y valgrind``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from run import BENCH, PY, Procs, free_port, setup_gateway, th_env, wait_http  # bench/run.py, beside this file

BODY = {"model": "openai/gpt-4.1", "messages": [{"role": "user", "content": "Say hello in one short sentence, please."}],
        "max_tokens": 64}  # fmt: skip


async def drive(url: str, key: str, requests: int, concurrency: int, stream: bool) -> None:
    """``requests`` requests, ``concurrency`` at a time; every answer read whole and checked."""
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}} if stream else BODY
    left = requests
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as session:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.post(url, json=body) as resp:
                    data = await resp.read()
                    if resp.status != 200 or (stream and not data.rstrip().endswith(b"data: [DONE]")):
                        raise RuntimeError(f"bad answer: {resp.status} {data[:200]!r}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def by_object(out: Path) -> list[tuple[str, int]]:
    """Instructions by shared object, most first (callgrind_annotate's per-function totals, summed)."""
    report = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", str(out)],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    objects: collections.Counter[str] = collections.Counter()
    for line in report.splitlines():
        m = re.match(r"^\s*([\d,]+) \([^)]*\)\s+\S+ \[(.+)\]$", line)
        if m:
            objects[Path(m.group(2)).name] += int(m.group(1).replace(",", ""))
    return objects.most_common()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", choices=("gateway", "bare-proxy"), default="gateway")
    ap.add_argument("--requests", type=int, default=1000, help="requests counted")
    ap.add_argument("--warmup", type=int, default=200, help="requests before counting starts")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--stream", action="store_true", help="streamed chat completions instead of whole ones")
    ap.add_argument("--obfuscation", action="store_true", help="the fake upstream pads every chunk as api.openai.com does")
    ap.add_argument("--keep", metavar="PATH", type=Path,
                    help="keep callgrind's counts there, for callgrind_annotate by function (a compiled module's as CPyDef_...)")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install -y valgrind")
    workdir = Path(tempfile.mkdtemp(prefix="tokenhub-instructions-"))
    procs = Procs(workdir)
    out = workdir / "callgrind.out"
    try:
        up_port = free_port()
        padding = ["--obfuscation"] if args.obfuscation else []
        up = procs.start("upstream", [PY, str(BENCH / "fake_upstream.py"), "--port", str(up_port), *padding], cpus="0")
        wait_http(f"http://127.0.0.1:{up_port}/", up, procs, "upstream")
        port = free_port()
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        if args.target == "gateway":
            tools = {"tokenhub": str(Path(PY).parent / "tokenhub")}
            env, key = setup_gateway("gateway", tools, up_port, workdir, None, None)
            server = procs.start("gateway", [*valgrind, PY, "-m", "tokenhub", "serve", "--port", str(port)], env=env, cpus="1")
            url = f"http://127.0.0.1:{port}/api/v1/chat/completions"
            wait_http(f"http://127.0.0.1:{port}/api/v1/models", server, procs, "gateway", timeout=600)
        else:
            env, key = th_env(workdir, None), "sk-bench"
            argv = [*valgrind, PY, str(BENCH / "bare_proxy.py"), "--port", str(port), "--upstream", f"http://127.0.0.1:{up_port}"]
            server = procs.start("bare-proxy", argv, cpus="1")
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            wait_http(f"http://127.0.0.1:{port}/", server, procs, "bare-proxy", timeout=600)
        asyncio.run(drive(url, key, args.warmup, args.concurrency, args.stream))
        subprocess.run(["callgrind_control", "--instr=on", str(server.pid)], check=True, capture_output=True)
        started = time.monotonic()
        asyncio.run(drive(url, key, args.requests, args.concurrency, args.stream))
        subprocess.run(["callgrind_control", "--instr=off", str(server.pid)], check=True, capture_output=True)
        seconds = time.monotonic() - started
        procs.stop_all()  # callgrind writes its counts as the server exits
        total = int(re.search(r"^totals:\s*(\d+)", out.read_text(), re.M).group(1))  # type: ignore[union-attr]
        kind = "streams" if args.stream else "requests"
        print(f"{args.target}: {total / args.requests:,.0f} instructions per request "
              f"({args.requests} {kind} at c={args.concurrency}, {seconds:.0f} s under valgrind)")  # fmt: skip
        for name, count in by_object(out)[:8]:
            print(f"  {count / args.requests:>12,.0f}  {name}")
        if args.keep is not None:
            shutil.copyfile(out, args.keep)
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
