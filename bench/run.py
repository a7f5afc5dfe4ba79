"""TokenHub benchmark: direct vs bare Python proxy vs the real gateway, in one run.

    .venv/bin/python bench/run.py            # full run (~5 min): 3 x 5 s per point, medians
    .venv/bin/python bench/run.py --quick    # ~1 min: 1 x 2 s per point
    .venv/bin/python bench/run.py --postgres # also the gateway on PostgreSQL + Redis (127.0.0.1:5432, :6379)
    .venv/bin/python bench/run.py --soak 100000 --workers 1,2,4   # memory and latency over time; processes

See bench/README.md for the method.  Every server is a subprocess of this script, stopped at
the end, also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
MODEL = "openai/gpt-4.1"
MESSAGES = [{"role": "user", "content": "Say hello in one short sentence, please."}]
BODY = json.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": 64}, separators=(",", ":"))
STREAM_BODY = json.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": 64, "stream": True,
                          "stream_options": {"include_usage": True}}, separators=(",", ":"))

LOUD = "!" * 78


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- processes ---------------------------------------------------------------------------------


class Procs:
    """Every server this script starts; stop_all() ends them by pid (SIGTERM, then SIGKILL)."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              cpus: str | None = None) -> subprocess.Popen:
        if cpus is not None:
            argv = ["taskset", "-c", cpus, *argv]
        logf = open(self.logdir / f"{name}.log", "wb")
        # A new session, so a Ctrl-C in the terminal reaches only this script, which then stops
        # the servers in order (the gateway gets a SIGTERM and shuts down cleanly).
        p = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        logf.close()
        self.procs[name] = p
        return p

    def stop(self, name: str, timeout: float = 30.0) -> None:
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} (pid {p.pid}) did not stop in {timeout:.0f} s: SIGKILL")
            p.kill()
            p.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name, timeout=10)

    def tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join((self.logdir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, procs: Procs, name: str, timeout: float = 60.0) -> None:
    """Wait until the server answers anything at all on URL (any HTTP status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{procs.tail(name)}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not come up on {url} in {timeout:.0f} s:\n{procs.tail(name)}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int, field: str = "VmHWM") -> float | None:
    """Peak RSS (VmHWM), or with field="VmRSS" the RSS now, in MB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def rss_mb(pid: int) -> float | None:
    return peak_rss_mb(pid, "VmRSS")


def process_tree(pid: int) -> list[int]:
    """pid and its children (a gateway started with --workers N: the supervisor and its workers)."""
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


# -- tools -------------------------------------------------------------------------------------


def check_tools(args: argparse.Namespace) -> dict[str, str]:
    """Find what is needed; explain and exit when something essential is missing."""
    problems, notes = [], {}
    for mod in ("aiohttp", "uvloop", "orjson"):
        try:
            __import__(mod)
        except ImportError:
            problems.append(f"Python module {mod!r} is missing from {PY} (run with the project venv: "
                            f".venv/bin/python bench/run.py)")
    tokenhub = Path(PY).parent / "tokenhub"
    if not tokenhub.exists():
        found = shutil.which("tokenhub")
        if found:
            tokenhub = Path(found)
        else:
            problems.append("the `tokenhub` CLI is not next to this Python nor on PATH "
                            "(pip install -e . into the venv)")
    notes["tokenhub"] = str(tokenhub)
    wrk = shutil.which("wrk")
    if args.loadgen == "wrk" and not wrk:
        problems.append("--loadgen wrk, but wrk is not installed (Debian: apt-get install -y wrk)")
    if args.loadgen == "auto":
        args.loadgen = "wrk" if wrk else "python"
        if not wrk:
            log("NOTE: wrk is not installed, so the non-streaming runs use bench/loadgen.py (Python, "
                "aiohttp+uvloop), which saturates near 4-5k req/s on one core and so caps the direct and "
                "bare-proxy figures.  For the real numbers: apt-get install -y wrk")
    if args.pin and not shutil.which("taskset"):
        log("NOTE: taskset (util-linux) is missing: running without CPU pinning")
        args.pin = False
    if args.pin and (os.cpu_count() or 1) < 2:
        log("NOTE: fewer than 2 CPUs: running without CPU pinning")
        args.pin = False
    if args.postgres:
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            problems.append("--postgres needs asyncpg in this Python (it is a tokenhub dependency)")
    if problems:
        log("Cannot run the benchmark:\n  - " + "\n  - ".join(problems))
        sys.exit(2)
    if args.py_spy:
        found = shutil.which(args.py_spy)
        if not found:
            problems.append(f"--py-spy: {args.py_spy!r} not found (pip install py-spy, e.g. into a separate venv, "
                            "and pass its path: --py-spy /path/to/py-spy)")
        args.py_spy = found
    notes["wrk"] = wrk or ""
    return notes


# -- load -----------------------------------------------------------------------------------------

WRK_LUA = """
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
function done(s, lat, req)
  io.write(string.format(
    'BENCHJSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d,"p50_us":%%d,"p99_us":%%d}\\n',
    s.requests, s.duration, s.errors.connect, s.errors.read, s.errors.write, s.errors.status, s.errors.timeout,
    lat:percentile(50), lat:percentile(99)))
end
"""


class Load:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.cpus = "0" if args.pin else None

    def _cmd(self, argv: list[str]) -> list[str]:
        return ["taskset", "-c", self.cpus, *argv] if self.cpus else argv

    def wrk(self, url: str, key: str, conc: int, seconds: int, pids: list[int]) -> dict:
        script = self.workdir / f"wrk-{abs(hash(key))}.lua"
        if not script.exists():
            script.write_text(WRK_LUA % {"body": BODY, "key": key})
        cpu0 = [cpu_seconds(p) for p in pids]
        out = subprocess.run(self._cmd(["wrk", "-t1", f"-c{conc}", f"-d{seconds}s", "--timeout", "10s",
                                        "-s", str(script), url]),
                             capture_output=True, text=True, timeout=seconds + 60)
        cpu1 = [cpu_seconds(p) for p in pids]
        m = re.search(r"^BENCHJSON (.*)$", out.stdout, re.M)
        if out.returncode != 0 or not m:
            raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        r = json.loads(m.group(1))
        dur = r["duration_us"] / 1e6
        kinds = {k: r[k] for k in ("connect", "read", "write", "status", "timeout") if r[k]}
        n_bad = r["status"]  # non-2xx/3xx answers are also counted in "requests" by wrk
        ok = r["requests"] - n_bad
        return {"requests": ok, "duration_s": round(dur, 3), "rps": ok / dur, "errors": sum(kinds.values()),
                "error_kinds": kinds, "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
                "cpu_s": {str(p): round(b - a, 3) for p, a, b in zip(pids, cpu0, cpu1)}}

    def python(self, url: str, key: str, body: str, conc: int, seconds: float, warmup: float,
               pids: list[int]) -> dict:
        argv = [PY, str(BENCH / "loadgen.py"), "--url", url, "--key", key, "--body", body,
                "--concurrency", str(conc), "--duration", str(seconds), "--warmup", str(warmup)]
        for p in pids:
            argv += ["--cpu-pid", str(p)]
        out = subprocess.run(self._cmd(argv), capture_output=True, text=True, timeout=seconds + warmup + 120)
        if out.returncode != 0:
            raise RuntimeError(f"loadgen failed ({out.returncode}):\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def point(self, url: str, key: str, stream: bool, conc: int, pids: list[int]) -> dict:
        """Warm up, then REPEATS measured runs; medians plus the raw runs."""
        a = self.args
        runs = []
        if not stream and a.loadgen == "wrk":
            self.wrk(url, key, conc, a.warmup, [])
            for _ in range(a.repeats):
                runs.append(self.wrk(url, key, conc, a.duration, pids))
        else:
            for _ in range(a.repeats):
                runs.append(self.python(url, key, STREAM_BODY if stream else BODY, conc, a.duration, a.warmup, pids))
        med = lambda k: None if runs[0].get(k) is None else round(statistics.median(r[k] for r in runs), 3)  # noqa: E731
        res = {"rps": round(statistics.median(r["rps"] for r in runs), 1),
               "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"),
               "errors": sum(r["errors"] for r in runs), "requests": sum(r["requests"] for r in runs)}
        if stream:
            res["ttfb_p50_ms"], res["ttfb_p99_ms"] = med("ttfb_p50_ms"), med("ttfb_p99_ms")
        kinds: dict[str, int] = {}
        for r in runs:
            for k, v in r["error_kinds"].items():
                kinds[k] = kinds.get(k, 0) + v
        if kinds:
            res["error_kinds"] = kinds
        if pids:  # every process of the system under test (a gateway's workers too)
            per = [sum(r["cpu_s"][str(p)] for p in pids) / r["requests"] * 1e6 for r in runs if r["requests"]]
            res["cpu_us_per_req"] = round(statistics.median(per), 1) if per else None
        if len(pids) > 1:  # how the load spread: each process's share of the CPU, largest first
            used = [sum(r["cpu_s"][str(p)] for r in runs) for p in pids]
            res["cpu_share_pct"] = sorted((round(100 * u / (sum(used) or 1)) for u in used), reverse=True)
        res["runs"] = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                        if k in ("rps", "p50_ms", "p99_ms", "ttfb_p50_ms", "ttfb_p99_ms", "errors")} for r in runs]
        return res


# -- targets ------------------------------------------------------------------------------------


def verify(url: str, key: str) -> None:
    """One request of each kind, checked by hand, before any load."""
    hdrs = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    for body in (BODY, STREAM_BODY):
        req = urllib.request.Request(url, data=body.encode(), headers=hdrs, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                status, data = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        if status != 200:
            raise RuntimeError(f"{url} answered {status}: {data[:500]!r}")
        if '"stream":true' in body:
            if not data.rstrip().endswith(b"data: [DONE]") or b'"usage":{' not in data:
                raise RuntimeError(f"{url}: the stream is not a complete OpenAI SSE stream with usage: {data[-300:]!r}")
        elif b'"choices"' not in data or b'"usage"' not in data:
            raise RuntimeError(f"{url}: unexpected answer: {data[:300]!r}")


def measure_target(name: str, url: str, key: str, pids: list[int], load: Load, args: argparse.Namespace) -> dict:
    verify(url, key)
    out: dict = {"url": url, "nonstream": {}, "stream": {}}
    for c in args.concurrency:
        log(f"  {name}: non-stream c={c}")
        out["nonstream"][str(c)] = load.point(url, key, False, c, pids)
    for c in args.stream_concurrency:
        log(f"  {name}: stream c={c}")
        out["stream"][str(c)] = load.point(url, key, True, c, pids)
    if pids:
        out["peak_rss_mb"] = peak_rss_mb(pids[0])
        if args.py_spy and name.startswith("gateway"):
            out["profile"] = {c: profile(args.py_spy, pids[0], url, key, int(c), load, args)
                              for c in ("1", "16")}
            out["profile_stream"] = {"16": profile(args.py_spy, pids[0], url, key, 16, load, args, stream=True)}
    return out


# Where a py-spy stack sample belongs (first match wins).  SQLAlchemy's async engine runs its
# sync code in greenlets, which py-spy shows as separate roots: they are all ledger work here.
# Where the GIL-holding samples are, by the code that runs at the sample: its innermost Python frame (C
# code, such as sqlite3's or orjson's, counts for the Python line that called it). py-spy's stacks of a
# coroutine start at the coroutine (the event loop that resumes it is C), so a caller's stack says little;
# the leaf says who spends the time.
PROFILE_BUCKETS = [
    ("event loop: uvloop C code (epoll, socket I/O; samples without a Python frame)",
     lambda leaf: leaf.startswith("run_app") or not leaf),
    ("aiohttp: HTTP parsing, headers and writes (server and client)", lambda leaf: "aiohttp/" in leaf),
    ("ledger: holds and settlements (SQL on the raw drivers)",
     lambda leaf: "tokenhub/billing/ledger" in leaf or any(d in leaf for d in ("sqlite3/", "aiosqlite/", "asyncpg/"))),
    ("relay and protocol adapters (tokenhub/relay, tokenhub/providers, the bill)",
     lambda leaf: any(d in leaf for d in ("tokenhub/relay/", "tokenhub/providers/", "tokenhub/billing/", "tokenhub/sse"))),
    ("auth, routing, limits, middleware (tokenhub/api, surface, directory, limits)",
     lambda leaf: "tokenhub/" in leaf and "tokenhub/metrics" not in leaf),
    ("metrics (prometheus_client)", lambda leaf: "prometheus_client/" in leaf or "tokenhub/metrics" in leaf),
    ("Redis client", lambda leaf: "redis/" in leaf),
    ("asyncio, the rest of the standard library, other libraries",
     lambda leaf: any(m in leaf for m in (".py:", "(<string>", "(<frozen"))),
]


def summarise_profile(raw: str) -> tuple[int, dict[str, int], dict[str, int]]:
    """py-spy's raw output (``stack count`` lines): the samples, by bucket and by innermost frame."""
    buckets: dict[str, int] = {}
    leaves: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():  # a line py-spy cut short
            continue
        leaf = stack.split(";")[-1]
        total += int(n)
        bucket = next((b for b, f in PROFILE_BUCKETS if f(leaf)), "other")
        buckets[bucket] = buckets.get(bucket, 0) + int(n)
        leaves[leaf] = leaves.get(leaf, 0) + int(n)
    return total, buckets, leaves


def profile(py_spy: str, pid: int, url: str, key: str, conc: int, load: Load, args: argparse.Namespace,
            stream: bool = False) -> dict:
    """py-spy (GIL-holding samples only) while wrk drives `conc` non-streaming connections (or the
    Python load generator `conc` streams)."""
    log(f"  profiling pid {pid} with py-spy at c={conc}{' (streams)' if stream else ''}")
    raw = load.workdir / f"pyspy-{pid}-{conc}{'-stream' if stream else ''}.txt"
    spy = subprocess.Popen([py_spy, "record", "-p", str(pid), "-d", str(args.duration), "-r", "200", "--gil",
                            "--nonblocking", "-f", "raw", "-o", str(raw)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if stream:
            r = load.python(url, key, STREAM_BODY, conc, args.duration, 0.5, [pid])
        elif args.loadgen == "wrk":
            r = load.wrk(url, key, conc, args.duration, [pid])
        else:
            r = load.python(url, key, BODY, conc, args.duration, 0.5, [pid])
    finally:
        try:
            spy.wait(args.duration + 30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
    total, buckets, leaves = summarise_profile(raw.read_text() if raw.exists() else "")
    pc = lambda d: {k: round(100 * v / total, 1) for k, v in sorted(d.items(), key=lambda kv: -kv[1])}  # noqa: E731
    return {"samples": total, "rps_while_profiled": round(r["rps"], 1), "buckets_pct": pc(buckets),
            "top_leaves_pct": dict(list(pc(leaves).items())[:12])}


def th_env(home: Path, db_url: str | None, redis_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_")}
    env.update(TOKENHUB_HOME=str(home), TOKENHUB_SECRET_KEY="bench-secret-key-not-for-production")
    if db_url:
        env["TOKENHUB_DATABASE_URL"] = db_url
    if redis_url:
        env["TOKENHUB_REDIS_URL"] = redis_url
    return env


def cli(tokenhub: str, env: dict[str, str], *argv: str) -> str:
    r = subprocess.run([tokenhub, *argv], env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"tokenhub {' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def setup_gateway(label: str, tools: dict, up_port: int, workdir: Path, db_url: str | None,
                  redis_url: str | None) -> tuple[dict[str, str], str]:
    """A fresh TOKENHUB_HOME set up through the real CLI; the environment and the bench key."""
    home = workdir / f"home-{label}"
    home.mkdir()
    env = th_env(home, db_url, redis_url)
    th = tools["tokenhub"]
    email = "bench@example.com"
    cli(th, env, "user", "create", email)
    cli(th, env, "credits", "add", email, "1000000")
    # With Redis, the key has a rate limit far above the load, so every request is admitted through Redis.
    limits = ["--rpm", "10000000"] if redis_url else []
    m = re.search(r"\bth-[A-Za-z0-9_\-]+", cli(th, env, "key", "create", email, "--name", "bench", *limits))
    if not m:
        raise RuntimeError("tokenhub key create printed no th- key")
    cli(th, env, "channel", "add", "openai-compatible", "--base-url", f"http://127.0.0.1:{up_port}/v1",
        "--api-key", "sk-bench", "--name", "bench", "--models", "openai/gpt-4.1=gpt-4.1")
    return env, m.group(0)


def start_gateway(label: str, tools: dict, args: argparse.Namespace, procs: Procs, env: dict[str, str],
                  workers: int = 1) -> tuple[subprocess.Popen, int]:
    port = free_port()
    argv = [tools["tokenhub"], "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    p = procs.start(label, argv, env=env, cpus="1" if args.pin else None)
    wait_http(f"http://127.0.0.1:{port}/api/v1/models", p, procs, label)
    return p, port


def finish_gateway(res: dict, tools: dict, env: dict[str, str], db_url: str | None) -> dict:
    th = tools["tokenhub"]
    res["database"] = "postgresql" if db_url else "sqlite"
    if env.get("TOKENHUB_REDIS_URL"):
        res["database"] += " + redis"
    chk = subprocess.run([th, "ledger", "check"], env=env, capture_output=True, text=True, timeout=300)
    res["ledger_check"] = {"ok": chk.returncode == 0, "output": (chk.stdout + chk.stderr).strip()[-1000:]}
    res["request_rows"] = count_request_rows(Path(env["TOKENHUB_HOME"]), db_url)
    return res


def run_gateway(label: str, tools: dict, args: argparse.Namespace, procs: Procs, load: Load, upstream_port: int,
                workdir: Path, db_url: str | None, redis_url: str | None = None) -> dict:
    env, key = setup_gateway(label, tools, upstream_port, workdir, db_url, redis_url)
    p, port = start_gateway(label, tools, args, procs, env)
    url = f"http://127.0.0.1:{port}/api/v1/chat/completions"
    time.sleep(1.0)  # started, one request served (the readiness probe): what it holds idle
    idle = rss_mb(p.pid)
    try:
        res = measure_target(label, url, key, [p.pid], load, args)
        if args.soak and label == "gateway":
            res["soak"] = soak(url, key, p.pid, load, args, Path(env["TOKENHUB_HOME"]) / "tokenhub.db-wal")
    finally:
        rss = peak_rss_mb(p.pid)
        procs.stop(label)
    res["idle_rss_mb"], res["peak_rss_mb"] = idle, rss
    return finish_gateway(res, tools, env, db_url)


def soak(url: str, key: str, pid: int, load: Load, args: argparse.Namespace, wal: Path) -> dict:
    """--soak N: at least N more non-streaming requests at c=16 in slices of --soak-slice seconds; per
    slice the rate, p50/p99, CPU per request, the RSS and the SQLite write-ahead log's file size at its
    end (is memory flat, does latency drift, does the log start over?)."""
    log(f"  gateway: soak, {args.soak:,} requests at c=16")
    slices = []
    done = 0
    while done < args.soak:
        r = load.wrk(url, key, 16, args.soak_slice, [pid]) if args.loadgen == "wrk" else \
            load.python(url, key, BODY, 16, args.soak_slice, 0.2, [pid])
        done += r["requests"]
        slices.append({"requests": done, "rps": round(r["rps"], 1), "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                       "errors": r["errors"], "cpu_us_per_req": round(r["cpu_s"][str(pid)] / max(r["requests"], 1) * 1e6, 1),
                       "rss_mb": rss_mb(pid), "wal_mb": round(wal.stat().st_size / 1e6, 1) if wal.exists() else None})
    first, last = slices[0], slices[-1]
    third = max(len(slices) // 3, 1)  # the drift: the last third of the slices against the first, median to median
    early, late = (statistics.median(s["p50_ms"] for s in part) for part in (slices[:third], slices[-third:]))
    return {"slices": slices, "requests": done, "errors": sum(s["errors"] for s in slices),
            "p50_drift_pct": round(100 * (late - early) / early, 1),
            "rss_change_pct": round(100 * (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"], 1),
            "p50_change_pct": round(100 * (last["p50_ms"] - first["p50_ms"]) / first["p50_ms"], 1),
            "rps_change_pct": round(100 * (last["rps"] - first["rps"]) / first["rps"], 1)}


def run_workers(tools: dict, args: argparse.Namespace, procs: Procs, load: Load, upstream_port: int,
                workdir: Path, db_url: str | None, redis_url: str | None) -> dict:
    """--workers 1,2,4: `serve --workers N` (every process on the gateway's core), non-streaming and
    streaming at c=16, CPU per request summed over the supervisor and its workers; beside it the bare
    proxy forked N times on one socket the same way (what N processes on one core cost anyway)."""
    env, key = setup_gateway("workers", tools, upstream_port, workdir, db_url, redis_url)
    out: dict = {}
    bare: dict = {}
    for n in args.workers:
        label = f"bare-proxy-w{n}"
        log(f"{label}: bare_proxy.py --workers {n}")
        port = free_port()
        p = procs.start(label, [PY, str(BENCH / "bare_proxy.py"), "--port", str(port), "--upstream",
                                f"http://127.0.0.1:{upstream_port}", "--workers", str(n)], cpus="1" if args.pin else None)
        wait_http(f"http://127.0.0.1:{port}/", p, procs, label)
        deadline = time.monotonic() + 30
        while len(process_tree(p.pid)) < (n + 1 if n > 1 else 1) and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = process_tree(p.pid)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        try:
            bare[str(n)] = {"processes": len(pids), "nonstream": load.point(url, "sk-bench", False, 16, pids),
                            "stream": load.point(url, "sk-bench", True, 16, pids)}
        finally:
            procs.stop(label)
    for n in args.workers:
        label = f"gateway-w{n}"
        log(f"{label}: serve --workers {n}")
        p, port = start_gateway(label, tools, args, procs, env, workers=n)
        url = f"http://127.0.0.1:{port}/api/v1/chat/completions"
        deadline = time.monotonic() + 30
        while len(process_tree(p.pid)) < n + 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = process_tree(p.pid)
        verify(url, key)
        try:
            out[str(n)] = {"processes": len(pids), "nonstream": load.point(url, key, False, 16, pids),
                           "stream": load.point(url, key, True, 16, pids)}
        finally:
            procs.stop(label)
    return finish_gateway({"by_workers": out, "bare_by_workers": bare}, tools, env, db_url)


def count_request_rows(home: Path, db_url: str | None) -> dict | None:
    """requests rows by state (settled/held/released): every served request should be settled."""
    query = "SELECT state, count(*) FROM requests GROUP BY state"
    try:
        if db_url is None:
            import sqlite3
            con = sqlite3.connect(home / "tokenhub.db")
            try:
                return dict(con.execute(query).fetchall())
            finally:
                con.close()
        import asyncio

        import asyncpg

        async def q() -> dict:
            con = await asyncpg.connect(db_url)
            try:
                return {r[0]: r[1] for r in await con.fetch(query)}
            finally:
                await con.close()
        return asyncio.run(q())
    except Exception as e:  # noqa: BLE001 - informative only
        return {"error": str(e)}


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"  # the gateway namespaces its keys by deployment


def pg_admin(sql: str) -> None:
    import asyncio

    import asyncpg

    async def go() -> None:
        con = await asyncpg.connect(PG_ADMIN)
        try:
            await con.execute(sql)
        finally:
            await con.close()
    asyncio.run(go())


# -- report -------------------------------------------------------------------------------------


def fmt(v, nd=2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}"


def report(result: dict) -> str:
    lines = []
    a = result["config"]
    code = result.get("code", {})
    loaded = {name: t for name, t in result["targets"].items() if "nonstream" in t}
    lines.append(f"TokenHub benchmark  {result['date']}  commit {code.get('commit')}"
                 f"{' + uncommitted changes in src/' if code.get('src_dirty') else ''}"
                 f"{', compiled modules (mypyc)' if code.get('compiled') else ', pure Python'}  ({result['machine']['cpus']} CPUs, "
                 f"{result['machine']['cpu_model']}; loadgen: {a['loadgen']} non-stream, python stream; "
                 f"{a['repeats']} x {a['duration_s']} s per point, medians; pinning: {a['pinning']})")
    lines.append("")
    lines.append("Non-streaming chat completions")
    lines.append(f"{'target':<18}{'c':>4}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'CPU us/req':>12}")
    for name, t in loaded.items():
        for c, r in t["nonstream"].items():
            lines.append(f"{name:<18}{c:>4}{fmt(r['rps'], 0):>10}{fmt(r['p50_ms']):>9}{fmt(r['p99_ms']):>9}"
                         f"{r['errors']:>8}{fmt(r.get('cpu_us_per_req'), 0):>12}")
    lines.append("")
    lines.append(f"Streaming chat completions (22 chunks + usage + [DONE]; chunk delay {a['chunk_delay_s']} s)")
    lines.append(f"{'target':<18}{'c':>4}{'streams/s':>10}{'TTFB p50':>10}{'TTFB p99':>10}{'total p50':>10}"
                 f"{'total p99':>10}{'errors':>8}{'CPU us/req':>12}")
    for name, t in loaded.items():
        for c, r in t["stream"].items():
            lines.append(f"{name:<18}{c:>4}{fmt(r['rps'], 0):>10}{fmt(r['ttfb_p50_ms']):>10}{fmt(r['ttfb_p99_ms']):>10}"
                         f"{fmt(r['p50_ms']):>10}{fmt(r['p99_ms']):>10}{r['errors']:>8}"
                         f"{fmt(r.get('cpu_us_per_req'), 0):>12}")
    lines.append("")
    for name, t in loaded.items():
        extra = []
        if t.get("idle_rss_mb") is not None:
            extra.append(f"idle RSS {t['idle_rss_mb']} MB")
        if t.get("peak_rss_mb") is not None:
            extra.append(f"peak RSS {t['peak_rss_mb']} MB")
        if "ledger_check" in t:
            extra.append(f"ledger check {'OK' if t['ledger_check']['ok'] else 'FAILED'}")
            extra.append(f"request rows {t.get('request_rows')}")
        if extra:
            lines.append(f"{name}: " + "; ".join(extra))
    soaked = result["targets"].get("gateway", {}).get("soak")
    if soaked:
        lines.append(f"\nSoak: {soaked['requests']:,} non-streaming requests at c=16 through the gateway, in slices")
        lines.append(f"{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}{'RSS MB':>9}{'WAL MB':>9}")
        for sl in soaked["slices"]:
            lines.append(f"{sl['requests']:>10,}{fmt(sl['rps'], 0):>9}{fmt(sl['p50_ms']):>9}{fmt(sl['p99_ms']):>9}"
                         f"{fmt(sl['cpu_us_per_req'], 0):>12}{fmt(sl['rss_mb'], 1):>9}{fmt(sl.get('wal_mb'), 1):>9}")
        lines.append(f"first to last slice: RSS {soaked['rss_change_pct']:+.1f} %, p50 {soaked['p50_change_pct']:+.1f} %, "
                     f"req/s {soaked['rps_change_pct']:+.1f} %; p50 drift (median of the last third of the slices "
                     f"against the first third's) {soaked['p50_drift_pct']:+.1f} %")
    workers = result["targets"].get("workers")
    if workers:
        lines.append(f"\n`serve --workers N` ({workers.get('database')}; every process on the gateway's core), c=16")
        lines.append(f"{'target':>12}{'workers':>8}{'req/s':>9}{'CPU us/req':>12}{'streams/s':>11}{'CPU us/stream':>15}"
                     "   CPU share by process, % (requests / streams)")
        for target, rows in (("bare-proxy", workers.get("bare_by_workers") or {}), ("gateway", workers["by_workers"])):
            for n, w in rows.items():
                shares = " / ".join(",".join(map(str, w[k].get("cpu_share_pct", []))) for k in ("nonstream", "stream"))
                lines.append(f"{target:>12}{n:>8}{fmt(w['nonstream']['rps'], 0):>9}"
                             f"{fmt(w['nonstream'].get('cpu_us_per_req'), 0):>12}{fmt(w['stream']['rps'], 0):>11}"
                             f"{fmt(w['stream'].get('cpu_us_per_req'), 0):>15}   {shares}")
        for target, rows in (("bare-proxy", workers.get("bare_by_workers") or {}), ("gateway", workers["by_workers"])):
            if len(rows) > 1:
                lo, hi = rows[min(rows, key=int)], rows[max(rows, key=int)]
                change = [100 * (hi[k]["cpu_us_per_req"] / lo[k]["cpu_us_per_req"] - 1) for k in ("nonstream", "stream")]
                lines.append(f"{target}: CPU per request with {max(rows, key=int)} processes vs {min(rows, key=int)}: "
                             f"{change[0]:+.0f} % non-streaming, {change[1]:+.0f} % streaming")
        lines.append(f"workers: ledger check {'OK' if workers['ledger_check']['ok'] else 'FAILED'}; "
                     f"request rows {workers.get('request_rows')}")
    for name, t in loaded.items():
        profiles = [(c, "", p) for c, p in (t.get("profile") or {}).items()]
        profiles += [(c, " (streams)", p) for c, p in (t.get("profile_stream") or {}).items()]
        for c, kind, p in profiles:
            lines.append(f"\n{name} py-spy profile at c={c}{kind} ({p['samples']} GIL samples, "
                         f"{p['rps_while_profiled']:,.0f} req/s while profiled): share of the GIL-holding time")
            if code.get("compiled"):  # py-spy sees no frames in C: a compiled module's time is its Python caller's
                lines.append("  (compiled: the relay's and adapters' time counts for the route that called them)")
            for k, v in p["buckets_pct"].items():
                lines.append(f"  {v:5.1f} %  {k}")
    d = result.get("derived", {})
    if d:
        lines.append("")
        for v in d.values():
            lines.append(f"{v['label']}: {fmt(v['value'])}{v['unit']}  (target {v['target']})  "
                         f"{'MET' if v['met'] else 'MISSED'}")
    return "\n".join(lines)


def derive(targets: dict, args: argparse.Namespace) -> dict:
    """Issue 13's goals, each from this run's own figures (ratios to the bare proxy measured beside it);
    a goal whose figures the run did not measure is left out."""

    def get(*path):
        node = targets
        for step in path:
            node = node[step]
        return node

    def pct_of_bare(name: str, kind: str) -> float:
        return 100 * get(name, kind, "16", "rps") / get("bare-proxy", kind, "16", "rps")

    def workers_cpu_change() -> float:  # the larger change of the two kinds of request
        w = get("workers", "by_workers")
        lo, hi = min(w, key=int), max(w, key=int)
        changes = [100 * (w[hi][k]["cpu_us_per_req"] / w[lo][k]["cpu_us_per_req"] - 1) for k in ("nonstream", "stream")]
        return max(changes, key=abs)

    goals = [  # key, label, figure, unit, target, met
        ("sqlite_nonstream_c16_pct_of_bare", "gateway req/s at c=16 as % of the bare proxy",
         lambda: pct_of_bare("gateway", "nonstream"), " %", ">= 75 %", lambda v: v >= 75),
        ("sqlite_stream_c16_pct_of_bare", "gateway streams/s at c=16 as % of the bare proxy",
         lambda: pct_of_bare("gateway", "stream"), " %", ">= 75 %", lambda v: v >= 75),
        ("pg_redis_nonstream_c16_pct_of_bare", "gateway-pg-redis req/s at c=16 as % of the bare proxy",
         lambda: pct_of_bare("gateway-pg-redis", "nonstream"), " %", ">= 50 %", lambda v: v >= 50),
        ("pg_redis_stream_c16_pct_of_bare", "gateway-pg-redis streams/s at c=16 as % of the bare proxy",
         lambda: pct_of_bare("gateway-pg-redis", "stream"), " %", ">= 50 %", lambda v: v >= 50),
        ("sqlite_added_p50_c1_ms", "gateway p50 at c=1 minus direct p50",
         lambda: get("gateway", "nonstream", "1", "p50_ms") - get("direct", "nonstream", "1", "p50_ms"),
         " ms", "<= 0.3 ms", lambda v: v <= 0.3),
        ("sqlite_p99_over_p50_c16", "gateway p99 / p50 at c=16",
         lambda: get("gateway", "nonstream", "16", "p99_ms") / get("gateway", "nonstream", "16", "p50_ms"),
         " x", "<= 3 x", lambda v: v <= 3),
        ("pg_redis_added_ttfb_c1_ms", "gateway-pg-redis TTFB p50 at c=1 minus direct",
         lambda: get("gateway-pg-redis", "stream", "1", "ttfb_p50_ms") - get("direct", "stream", "1", "ttfb_p50_ms"),
         " ms", "<= 1 ms", lambda v: v <= 1),
        ("sqlite_idle_rss_mb", "gateway idle RSS", lambda: get("gateway", "idle_rss_mb") + 0, " MB", "<= 70 MB",
         lambda v: v <= 70),
        ("soak_rss_change_pct", "gateway RSS change over the soak", lambda: get("gateway", "soak", "rss_change_pct"),
         " %", "within +-10 %", lambda v: abs(v) <= 10),
        ("soak_p50_drift_pct", "gateway p50 drift over the soak (last third of the slices vs the first, medians)",
         lambda: get("gateway", "soak", "p50_drift_pct"), " %", "within +-10 %", lambda v: abs(v) <= 10),
        ("workers_cpu_change_pct", "CPU per request, the most workers vs 1 (the larger of requests, streams)", workers_cpu_change, " %", "within +-10 %",
         lambda v: abs(v) <= 10),
    ]
    d: dict = {}
    for key, label, figure, unit, target, met in goals:
        try:
            value = figure()
        except (KeyError, TypeError, ValueError):
            continue
        d[key] = {"label": label, "value": value, "unit": unit, "target": target, "met": met(value)}
    return d


# -- main ---------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Benchmark direct vs bare proxy vs TokenHub gateway.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~1 minute: --duration 2 --repeats 1 --warmup 1")
    ap.add_argument("--duration", type=int, default=5, help="seconds per measured run (whole seconds: wrk)")
    ap.add_argument("--repeats", type=int, default=3, help="measured runs per point (the median is reported)")
    ap.add_argument("--warmup", type=int, default=1, help="warmup seconds before each point")
    ap.add_argument("--concurrency", default="1,16,64", help="non-streaming concurrencies")
    ap.add_argument("--stream-concurrency", default="1,16", help="streaming concurrencies")
    ap.add_argument("--chunk-delay", type=float, default=0.0, help="fake upstream: seconds between SSE chunks")
    ap.add_argument("--targets", default="direct,bare-proxy,gateway",
                    help="which of direct,bare-proxy,gateway to run")
    ap.add_argument("--postgres", action="store_true",
                    help="also run the gateway on PostgreSQL at 127.0.0.1:5432 (a fresh database, dropped after) "
                         "with its rate limits in Redis at 127.0.0.1:6379: the multi-node mode")
    ap.add_argument("--soak", type=int, default=0, metavar="N",
                    help="after the gateway's points, N more non-streaming requests at c=16 in slices: RSS and "
                         "latency per slice (e.g. 100000)")
    ap.add_argument("--soak-slice", type=int, default=5, help="seconds per soak slice")
    ap.add_argument("--workers", default="", help="also `serve --workers N` for each N (e.g. 1,2,4), at c=16")
    ap.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto",
                    help="non-streaming load generator (auto: wrk when installed); streams always use loadgen.py")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="don't pin: by default load generator + upstream run on CPU 0, the proxy/gateway on CPU 1")
    ap.add_argument("--py-spy", metavar="PATH", nargs="?", const="py-spy",
                    help="after measuring the gateway, profile it with py-spy at c=1 and c=16, and streams at c=16 (GIL samples)")
    ap.add_argument("--out", help="result JSON path (default bench/results/YYYY-MM-DD-HHMM.json)")
    ap.add_argument("--no-save", action="store_true", help="don't write the JSON result")
    ap.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (the temp dir is printed)")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.repeats, args.warmup = 2, 1, 1
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    args.stream_concurrency = [int(c) for c in args.stream_concurrency.split(",") if c]
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    args.workers = [int(n) for n in args.workers.split(",") if n]
    bad = set(args.targets) - {"direct", "bare-proxy", "gateway"}
    if bad:
        ap.error(f"unknown targets: {', '.join(sorted(bad))}")
    if args.duration < 1 or args.warmup < 1 or args.repeats < 1:
        ap.error("--duration and --warmup must be >= 1 s, --repeats >= 1")
    return args


def git_state() -> dict:
    """The commit measured, and whether src/ had uncommitted changes (the gateway runs from src/)."""
    def git(*a: str) -> str:
        r = subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True, timeout=30)
        return r.stdout.strip() if r.returncode == 0 else ""
    return {"commit": git("rev-parse", "--short=12", "HEAD") or "unknown",
            "src_dirty": bool(git("status", "--porcelain", "--", "src")), "compiled": compiled()}


def compiled() -> bool:
    """Whether the tokenhub the gateway imports runs its mypyc-compiled modules (a wheel's: setup.py)."""
    spec = importlib.util.find_spec("tokenhub.sse")
    return spec is not None and (spec.origin or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def machine() -> dict:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import aiohttp
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "aiohttp": aiohttp.__version__, "kernel": platform.release()}


def main() -> int:
    args = parse_args()
    tools = check_tools(args)
    # SIGTERM and SIGHUP behave like Ctrl-C (SIGINT is set too, in case a shell started us ignoring it).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    code = git_state()  # before the run: what the gateway processes import
    workdir = Path(tempfile.mkdtemp(prefix="tokenhub-bench-"))
    procs = Procs(workdir)
    load = Load(args, workdir)
    pg_db = None
    targets: dict = {}
    started = time.monotonic()
    try:
        up_port = free_port()
        up = procs.start("upstream", [PY, str(BENCH / "fake_upstream.py"), "--port", str(up_port),
                                      "--chunk-delay", str(args.chunk_delay)], cpus="0" if args.pin else None)
        wait_http(f"http://127.0.0.1:{up_port}/", up, procs, "upstream")
        if "direct" in args.targets:
            log("direct (load generator -> fake upstream)")
            targets["direct"] = measure_target("direct", f"http://127.0.0.1:{up_port}/v1/chat/completions",
                                               "sk-bench", [], load, args)
        if "bare-proxy" in args.targets:
            log("bare proxy (aiohttp + one ClientSession, uvloop)")
            bp_port = free_port()
            bp = procs.start("bare-proxy", [PY, str(BENCH / "bare_proxy.py"), "--port", str(bp_port), "--upstream",
                                            f"http://127.0.0.1:{up_port}"], cpus="1" if args.pin else None)
            wait_http(f"http://127.0.0.1:{bp_port}/", bp, procs, "bare-proxy")
            time.sleep(1.0)
            bp_idle = rss_mb(bp.pid)
            targets["bare-proxy"] = measure_target("bare-proxy", f"http://127.0.0.1:{bp_port}/v1/chat/completions",
                                                   "sk-bench", [bp.pid], load, args)
            targets["bare-proxy"]["peak_rss_mb"] = peak_rss_mb(bp.pid)
            targets["bare-proxy"]["idle_rss_mb"] = bp_idle
            procs.stop("bare-proxy")
        if "gateway" in args.targets:
            log("gateway (tokenhub serve, SQLite)")
            targets["gateway"] = run_gateway("gateway", tools, args, procs, load, up_port, workdir, None)
        if args.postgres:
            pg_db = f"tokenhub_bench_{os.getpid()}_{int(time.time())}"
            log(f"gateway on PostgreSQL + Redis (database {pg_db}, {REDIS_URL})")
            pg_admin(f'CREATE DATABASE "{pg_db}"')
            targets["gateway-pg-redis"] = run_gateway("gateway-pg-redis", tools, args, procs, load, up_port, workdir,
                                                      f"postgresql://postgres@127.0.0.1:5432/{pg_db}", REDIS_URL)
        if args.workers:  # on PostgreSQL + Redis with --postgres (the mode for several processes), else SQLite
            workers_db = None
            if args.postgres:
                workers_db = f"{pg_db}_w"
                pg_admin(f'CREATE DATABASE "{workers_db}"')
            try:
                targets["workers"] = run_workers(tools, args, procs, load, up_port, workdir,
                                                 workers_db and f"postgresql://postgres@127.0.0.1:5432/{workers_db}",
                                                 REDIS_URL if args.postgres else None)
            finally:
                procs.stop_all()
                if workers_db:
                    pg_admin(f'DROP DATABASE IF EXISTS "{workers_db}" WITH (FORCE)')
    except KeyboardInterrupt:
        log("\ninterrupted: stopping every server")
        return 130
    finally:
        procs.stop_all()
        if pg_db:
            try:
                pg_admin(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)')
            except Exception as e:  # noqa: BLE001
                log(f"could not drop database {pg_db}: {e}")
        if args.keep_logs:
            log(f"server logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    now = datetime.now()
    result = {
        "date": now.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "code": code,
        "config": {"duration_s": args.duration, "repeats": args.repeats, "warmup_s": args.warmup,
                   "concurrency": args.concurrency, "stream_concurrency": args.stream_concurrency,
                   "chunk_delay_s": args.chunk_delay, "loadgen": args.loadgen,
                   "pinning": "loadgen+upstream on CPU 0, proxy/gateway on CPU 1" if args.pin else "none",
                   "wall_s": round(time.monotonic() - started, 1)},
        "targets": targets,
    }
    result["derived"] = derive(targets, args)
    print(report(result))
    errors = {f"{n} {kind} c={c}": r["errors"] for n, t in targets.items() for kind in ("nonstream", "stream")
              for c, r in t.get(kind, {}).items() if r["errors"]}
    errors.update({f"workers={n} {kind} c=16": w[kind]["errors"] for n, w in targets.get("workers", {}).get("by_workers", {}).items()
                   for kind in ("nonstream", "stream") if w[kind]["errors"]})
    if targets.get("gateway", {}).get("soak", {}).get("errors"):
        errors["gateway soak"] = targets["gateway"]["soak"]["errors"]
    failed = False
    if errors:
        print(f"\n{LOUD}\nERRORS DURING THE RUN - the figures above are not trustworthy:")
        for k, v in errors.items():
            print(f"  {k}: {v} failed requests")
        print(LOUD)
        failed = True
    for n, t in targets.items():
        if "ledger_check" in t:
            print(f"\n`tokenhub ledger check` after {n}: {'PASSED' if t['ledger_check']['ok'] else 'FAILED'}")
            print("  " + t["ledger_check"]["output"].replace("\n", "\n  "))
            if not t["ledger_check"]["ok"]:
                print(f"{LOUD}\nLEDGER CHECK FAILED after {n}\n{LOUD}")
                failed = True
    if not args.no_save:
        out = Path(args.out) if args.out else BENCH / "results" / f"{now.strftime('%Y-%m-%d-%H%M')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nresult written to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
