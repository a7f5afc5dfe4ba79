"""Every operator command, run as a real ``python -m tokenhub`` subprocess on a real database.

Effects are checked through later commands' output (exact figures), through the stored bytes
(no plaintext API key or upstream key may ever reach the database file), and, at the end, through
a running gateway that must pick up CLI changes within about a second.

Bad input must print ``error: ...`` on stderr, exit non-zero and leave the database exactly as it
was (compared with a full SQL dump before and after). Commands that do not depend on each other
run concurrently to keep the file fast.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Sequence

import openai
import pytest
from click.testing import CliRunner

from tests.conftest import UPSTREAM_KEY
from tests.support.harness import Harness
from tests.support.processes import python_output
from tokenhub.cli import main

SECRET = "cli-test-secret"
UPSTREAM_SECRET = "sk-upstream-SECRET-7f3a9c1e5b"
CHAT_MODEL = "deepseek/deepseek-v4-pro"


@dataclass
class Run:
    args: tuple[str, ...]
    rc: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"tokenhub {' '.join(self.args)} -> {self.rc}\nstdout: {self.out!r}\nstderr: {self.err!r}"


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("TOKENHUB_") and not k.endswith(("_API_KEY", "_ACCESS_KEY", "_SECRET_KEY"))
    }
    env.update(extra)
    return env


class CLI:
    """``tokenhub`` as a subprocess (``run``/``ok``/``many``), or in this process (``local``).

    A subprocess costs about half a second, so each test runs the commands it is about through
    subprocesses (with at least one bad input each) and the wider matrix of bad input through the
    same click entry point in-process, where it takes milliseconds.
    """

    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        self.env = clean_env(TOKENHUB_HOME=str(home), TOKENHUB_SECRET_KEY=SECRET)
        self.env.update(env)

    def _start(self, args: Sequence[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tokenhub", *args], env=self.env, cwd=self.home.parent,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def many(self, *commands: Sequence[str]) -> list[Run]:
        """Run independent commands as concurrent subprocesses."""
        procs = [(tuple(args), self._start(args)) for args in commands]
        runs = []
        for args, proc in procs:
            out, err = proc.communicate(timeout=60)
            runs.append(Run(args, proc.returncode, out, err))
        return runs

    def run(self, *args: str) -> Run:
        return self.many(args)[0]

    def local(self, *args: str) -> Run:
        """The same command through click in this process (same code path, no interpreter start)."""
        env: dict[str, str | None] = {k: None for k in os.environ if k not in self.env}
        env.update({k: v for k, v in self.env.items() if k.startswith("TOKENHUB_")})
        result = CliRunner().invoke(main, list(args), env=env, prog_name="tokenhub")
        return Run(tuple(args), result.exit_code, result.stdout, result.stderr)

    def ok(self, *args: str, local: bool = False) -> str:
        r = self.local(*args) if local else self.run(*args)
        assert r.rc == 0, str(r)
        assert "error" not in r.err.lower(), str(r)
        return r.out

    def refuse_all(self, db: Path, *cases: tuple[Sequence[str], str], local: bool = False) -> None:
        """Each command fails with an `error: ...` naming the problem, and nothing stored changes."""
        before = dump(db)
        if local:
            runs = [self.local(*args) for args, _ in cases]
        else:
            runs = self.many(*(args for args, _ in cases))
        for run, (_, says) in zip(runs, cases):
            assert run.rc != 0, str(run)
            assert run.out == "", str(run)  # in particular, never a key
            first = run.err.strip().splitlines()[0] if run.err.strip() else ""
            if run.rc == 2:  # click's own usage errors ("Error: Invalid value for ...")
                assert "Error:" in run.err, str(run)
            else:
                assert run.rc == 1 and first.startswith("error: "), str(run)
            assert says.lower() in run.err.lower(), f"expected {says!r} in:\n{run}"
            assert "Traceback" not in run.err, str(run)
        assert dump(db) == before


def dump(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def stored_bytes(home: Path) -> bytes:
    """Everything on disk under the home: the database, its WAL/journal, any other file."""
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def rows(table_text: str) -> list[list[str]]:
    """A CLI table's data rows (header dropped), split on the column gaps."""
    lines = [line for line in table_text.splitlines() if line.strip()]
    return [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]


def header(table_text: str) -> list[str]:
    return re.split(r"\s{2,}", table_text.splitlines()[0].strip())


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path / "home")


# -- users, keys and credits ----------------------------------------------------------------------


def test_users_keys_and_credits(cli: CLI) -> None:
    db = cli.home / "tokenhub.db"
    assert cli.ok("user", "create", "Alice@X.io", "--password", "a long password") == "created user alice@x.io (id 1)\n"
    assert db.exists()  # the embedded database is created and migrated on first use
    assert cli.ok("user", "create", "root@x.io", "--admin", local=True) == "created admin root@x.io (id 2)\n"

    made = cli.run("key", "create", "alice@x.io", "--name", "ci", "--limit", "5", "--models", "openai/*,deepseek/*",
                   "--expires", "2099-12-31")
    assert made.rc == 0, str(made)
    key_ci = made.out.strip()
    assert made.out == key_ci + "\n"  # the key alone on stdout, printed once
    assert re.fullmatch(r"th-[A-Za-z0-9_-]{30,}", key_ci)
    assert "key 1 'ci' for alice@x.io" in made.err and "cannot be shown again" in made.err
    key_default = cli.ok("key", "create", "alice@x.io", local=True).strip()
    assert key_default.startswith("th-") and key_default != key_ci

    listing = cli.ok("key", "list", "alice@x.io")
    assert header(listing) == ["ID", "NAME", "KEY", "STATE", "LIMIT", "USED", "MODELS", "LAST DAY"]
    (ci_row, default_row) = rows(listing)
    assert ci_row[:7] == ["1", "ci", ci_row[2], "active", "$5", "$0", "openai/*,deepseek/*"]
    assert default_row == ["2", "default", default_row[2], "active", "-", "$0", "*", "-"]
    assert key_ci.startswith(ci_row[2].rstrip("…")) and key_default.startswith(default_row[2].rstrip("…"))
    assert key_ci not in listing and key_default not in listing

    assert cli.ok("credits", "add", "alice@x.io", "10") == "alice@x.io: balance $10\n"
    assert cli.ok("credits", "add", "ALICE@x.io", "2.5", "--note", "welcome bonus") == "alice@x.io: balance $12.5\n"
    assert cli.ok("credits", "add", "alice@x.io", "--", "-0.000000001", local=True) == "alice@x.io: balance $12.499999999\n"
    assert cli.ok("credits", "show", "alice@x.io") == (
        "user:          alice@x.io\n"
        "balance:       $12.499999999\n"
        "held:          $0\n"
        "total credits: $12.499999999\n"
        "total usage:   $0\n"
    )

    assert cli.ok("key", "revoke", "1") == "revoked key 1 'ci'\n"
    states = {r[1]: r[3] for r in rows(cli.ok("key", "list", "alice@x.io", local=True))}
    assert states == {"ci": "revoked", "default": "active"}

    # Only hashes are stored: neither plaintext key (nor its secret part) nor the password is on disk.
    on_disk = stored_bytes(cli.home)
    assert b"alice@x.io" in on_disk  # the scan does see the data
    for secret in (key_ci, key_default, key_ci[12:], key_default[12:], "a long password"):
        assert secret.encode() not in on_disk

    # one bad input per command, as subprocesses
    cli.refuse_all(
        db,
        (["user", "create", "ALICE@X.IO", "--admin"], "a user with email alice@x.io already exists"),
        (["key", "create", "alice@x.io", "--expires", "2020-01-01"], "the expiry date 2020-01-01 is in the past"),
        (["key", "list", "nobody@x.io"], "no user nobody@x.io"),
        (["key", "revoke", "99"], "no key with id 99"),
        (["credits", "add", "alice@x.io", "1.0000000001"], "1.0000000001 has more than 9 decimal places"),
        (["credits", "show", "nobody@x.io"], "no user nobody@x.io"),
    )
    # the wider matrix, in-process
    cli.refuse_all(
        db,
        (["user", "create", "alice@x.io"], "already exists"),
        (["user", "create", "not-an-email"], "not a valid email"),
        (["user", "create", "short@x.io", "--password", "1234567"], "at least 8"),
        (["key", "create", "nobody@x.io"], "no user nobody@x.io"),
        (["key", "create", "alice@x.io", "--limit", "-1"], "cannot be negative"),
        (["key", "create", "alice@x.io", "--limit", "abc"], "--limit: not a USD amount"),
        (["key", "create", "alice@x.io", "--limit", "0.0000000001"], "more than 9 decimal places"),
        (["key", "create", "alice@x.io", "--expires", "2099-02-30"], "not a date"),
        (["key", "create", "alice@x.io", "--expires", "31/12/2099"], "not a date"),
        (["key", "create", "alice@x.io", "--models", "openai/*,bad model!"], "bad model!"),
        (["key", "create", "alice@x.io", "--name", "x" * 201], "1 to 200 characters"),
        (["key", "revoke", "abc"], "not a key id"),
        (["credits", "add", "alice@x.io", "abc"], "AMOUNT_USD: not a USD amount"),
        (["credits", "add", "alice@x.io", "NaN"], "not a USD amount"),
        (["credits", "add", "alice@x.io", "1e30"], "too large"),
        (["credits", "add", "alice@x.io", "0"], "not be zero"),
        (["credits", "add", "alice@x.io", "--", "-12.5"], "below zero"),
        (["credits", "add", "alice@x.io", "1", "--note", "n" * 501], "at most 500"),
        (["credits", "add", "nobody@x.io", "5"], "no user nobody@x.io"),
        local=True,
    )
    # and the balance the refusals left alone, once more
    assert cli.ok("credits", "show", "alice@x.io", local=True).splitlines()[1] == "balance:       $12.499999999"
    assert cli.ok("key", "revoke", "1", local=True) == "revoked key 1 'ci'\n"  # revoking again is harmless


def test_credits_add_negative_amount_without_double_dash(cli: CLI) -> None:
    cli.ok("user", "create", "bob@x.io", local=True)
    cli.ok("credits", "add", "bob@x.io", "10", local=True)
    assert cli.ok("credits", "add", "bob@x.io", "-2.5", local=True) == "bob@x.io: balance $7.5\n"


def test_key_list_shows_the_expiry_date_given(cli: CLI) -> None:
    cli.ok("user", "create", "bob@x.io", local=True)
    cli.ok("key", "create", "bob@x.io", "--expires", "2099-12-31", local=True)
    assert rows(cli.ok("key", "list", "bob@x.io", local=True))[0][-1] == "2099-12-31"


# -- channels -------------------------------------------------------------------------------------


def test_channels(cli: CLI) -> None:
    db = cli.home / "tokenhub.db"
    added = cli.ok(
        "channel", "add", "deepseek", "--base-url", "http://127.0.0.1:9/v1/", "--api-key", UPSTREAM_SECRET, "--name", "ds-main",
        "--models", f"{CHAT_MODEL}=dsv4,deepseek/deepseek-chat", "--priority", "5", "--weight", "3",
    )
    assert added == f"added channel 1 'ds-main' -> http://127.0.0.1:9/v1 serving {CHAT_MODEL}, deepseek/deepseek-chat\n"
    assert cli.ok("channel", "add", "deepseek", "--api-key", "sk-second-upstream-secret", local=True) == (
        "added channel 2 'deepseek' -> https://api.deepseek.com/v1 serving every deepseek model in the catalog\n"
    )
    assert cli.ok("channel", "add", "openai-compatible", "--base-url", "http://127.0.0.1:11434/v1", "--api-key", "ollama-key",
                  "--name", "local", "--priority", "-1", local=True).startswith("added channel 3 'local' -> http://127.0.0.1:11434/v1")
    assert cli.ok("channel", "add", "kling", "--api-key", "AK-123:SK-456", local=True).startswith(
        "added channel 4 'kling' -> https://api-singapore.klingai.com")

    listing = cli.ok("channel", "list")
    assert header(listing) == ["ID", "NAME", "PROVIDER", "BASE URL", "MODELS", "PRIORITY", "WEIGHT", "STATE"]
    assert rows(listing) == [
        ["1", "ds-main", "deepseek", "http://127.0.0.1:9/v1", f"{CHAT_MODEL}=dsv4,deepseek/deepseek-chat=deepseek-flash", "5", "3", "enabled"],
        ["2", "deepseek", "deepseek", "https://api.deepseek.com/v1", "*", "0", "1", "enabled"],
        ["3", "local", "openai-compatible", "http://127.0.0.1:11434/v1", "*", "-1", "1", "enabled"],
        ["4", "kling", "kling", "https://api-singapore.klingai.com", "*", "0", "1", "enabled"],
    ]
    on_disk = stored_bytes(cli.home)
    assert b"ds-main" in on_disk
    for secret in (UPSTREAM_SECRET, "sk-second-upstream-secret", "ollama-key", "SK-456"):
        assert secret not in listing
        assert secret.encode() not in on_disk  # encrypted at rest

    cli.refuse_all(
        db,
        (["channel", "add", "deepseek", "--api-key", "k", "--models", "deepseek/no-such-model"],
         "'deepseek/no-such-model' is not in the catalog"),
        (["channel", "remove", "nope"], "no channel 'nope'"),
    )
    cli.refuse_all(
        db,
        (["channel", "add", "nope", "--base-url", "http://h/v1", "--api-key", "k"], "unknown provider 'nope'"),
        (["channel", "add", "deepseek", "--base-url", "ftp://h/v1", "--api-key", "k"], "not an http(s) URL"),
        (["channel", "add", "deepseek", "--base-url", "not a url", "--api-key", "k"], "not an http(s) URL"),
        (["channel", "add", "deepseek", "--base-url", "http://user:pw@h/v1", "--api-key", "k"], "credentials"),
        (["channel", "add", "deepseek", "--api-key", "k", "--name", "ds-main"], "exists already"),
        (["channel", "add", "deepseek", "--api-key", "k", "--name", "bad name"], "channel name"),
        (["channel", "add", "openai-compatible", "--api-key", "k"], "needs --base-url"),
        (["channel", "add", "deepseek", "--api-key", "  "], "key is empty"),
        (["channel", "add", "kling", "--api-key", "only-access"], "ACCESS_KEY:SECRET_KEY"),
        (["channel", "add", "deepseek", "--api-key", "k", "--weight", "0"], "weight"),
        (["channel", "add", "deepseek", "--api-key", "k", "--priority", "high"], "--priority"),
        (["channel", "add", "deepseek", "--base-url", "http://h/v1"], "--api-key"),
        (["channel", "remove", "99"], "no channel '99'"),
        local=True,
    )

    assert cli.ok("channel", "remove", "ds-main") == "removed channel 1 'ds-main'\n"
    assert cli.ok("channel", "remove", "2", local=True) == "removed channel 2 'deepseek'\n"
    assert [r[1] for r in rows(cli.ok("channel", "list", local=True))] == ["local", "kling"]
    cli.refuse_all(db, (["channel", "remove", "ds-main"], "no channel 'ds-main'"), local=True)


# -- models ---------------------------------------------------------------------------------------


def test_models(cli: CLI) -> None:
    db = cli.home / "tokenhub.db"
    assert cli.ok("model", "set", "openai/gpt-4.1", "--input-price", "2.5", "--output-price", "10", "--cached-input-price", "0.125") == (
        "openai/gpt-4.1 (enabled): input $2.5, output $10, cached input $0.125 per 1M tokens; upstream id gpt-4.1\n"
    )
    # the next change keeps the earlier one (read back from the database)
    assert cli.ok("model", "set", "openai/gpt-4.1", "--disable", local=True) == (
        "openai/gpt-4.1 (disabled): input $2.5, output $10, cached input $0.125 per 1M tokens; upstream id gpt-4.1\n"
    )
    assert cli.ok("model", "set", "openai/gpt-4.1", "--enable", "--output-price", "0.000000001", local=True).startswith(
        "openai/gpt-4.1 (enabled): input $2.5, output $0.000000001, cached input $0.125"
    )

    assert cli.ok(
        "model", "add", "local/llama-3", "--provider", "openai-compatible", "--upstream-id", "llama3:8b",
        "--input-price", "0.1", "--output-price", "0.2", "--context", "8192",
    ) == "local/llama-3 (enabled): input $0.1, output $0.2 per 1M tokens; upstream id llama3:8b\n"
    # an added model is a catalog model: channels may serve it and its prices can be set
    assert cli.ok("channel", "add", "openai-compatible", "--base-url", "http://127.0.0.1:11434/v1", "--api-key", "x",
                  "--models", "local/llama-3", local=True) == "added channel 1 'openai-compatible' -> http://127.0.0.1:11434/v1 serving local/llama-3\n"
    assert cli.ok("model", "set", "local/llama-3", "--output-price", "0.3", local=True) == (
        "local/llama-3 (enabled): input $0.1, output $0.3 per 1M tokens; upstream id llama3:8b\n"
    )
    assert cli.ok("model", "add", "local/qwen-7b", "--provider", "openai-compatible", local=True) == (
        "local/qwen-7b (enabled): input $0, output $0 per 1M tokens; upstream id qwen-7b\n"
    )

    cli.refuse_all(
        db,
        (["model", "set", "openai/no-such-model", "--input-price", "1"], "no model 'openai/no-such-model' in the catalog"),
        (["model", "set", "openai/gpt-4.1"], "nothing to change"),
        (["model", "add", "local/llama-3", "--provider", "openai-compatible"], "'local/llama-3' is already in the catalog"),
    )
    cli.refuse_all(
        db,
        (["model", "set", "openai/gpt-4.1", "--input-price", "-1"], "cannot be negative"),
        (["model", "set", "openai/gpt-4.1", "--input-price", "abc"], "--input-price: not a USD amount"),
        (["model", "set", "openai/gpt-4.1", "--cached-input-price", "0.0000000001"], "more than 9 decimal places"),
        (["model", "add", "openai/gpt-4.1", "--provider", "openai"], "already in the catalog"),
        (["model", "add", "local/x", "--provider", "zzz"], "unknown provider 'zzz'"),
        (["model", "add", "no-slash", "--provider", "openai"], "vendor/name"),
        (["model", "add", "local/x", "--provider", "openai", "--context", "0"], "positive"),
        (["model", "add", "local/x", "--provider", "openai", "--context", "big"], "--context"),
        (["model", "add", "local/x", "--provider", "openai", "--output-price", "-0.5"], "cannot be negative"),
        (["model", "add", "local/x"], "--provider"),
        local=True,
    )


# -- ledger ---------------------------------------------------------------------------------------


def test_ledger_check(cli: CLI) -> None:
    db = cli.home / "tokenhub.db"
    cli.ok("user", "create", "bob@x.io", local=True)
    cli.ok("credits", "add", "bob@x.io", "10", local=True)
    assert cli.ok("ledger", "check") == "ledger OK: 1 balances and 0 keys match their entries\n"

    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE users SET balance = balance + 1 WHERE email = 'bob@x.io'")
    conn.close()

    bad = cli.run("ledger", "check")
    assert bad.rc == 1, str(bad)
    assert bad.out == "MISMATCH user bob@x.io: balance 10.000000001 != sum of ledger entries 10\n"
    assert "FAILED" in bad.err and "1 problem" in bad.err


# -- a running gateway picks CLI changes up -------------------------------------------------------


def _poll(fn: Callable[[], Any], timeout: float = 3.0) -> tuple[Any, float]:
    """Call fn until it returns without raising; the result and how long that took."""
    start = time.monotonic()
    while True:
        try:
            return fn(), time.monotonic() - start
        except Exception:
            if time.monotonic() - start > timeout:
                raise
            time.sleep(0.05)


def test_running_gateway_picks_up_cli_changes(
    make_gateway: Callable[..., Harness], sqlite_url: str, upstream_url: str, tmp_path: Path
) -> None:
    # The production refresh interval (1 s), not the harness's fast one.
    gateway = make_gateway(sqlite_url, refresh_interval=1.0)
    cli = CLI(tmp_path / "cli-home", TOKENHUB_DATABASE_URL=sqlite_url, TOKENHUB_SECRET_KEY=gateway.settings.secret_key or "")
    cli.ok("user", "create", "bob@x.io", local=True)
    cli.ok("credits", "add", "bob@x.io", "10", local=True)
    # the commands whose effect the gateway must pick up run as separate processes
    key = cli.ok("key", "create", "bob@x.io", "--limit", "5").strip()
    cli.ok("channel", "add", "deepseek", "--base-url", upstream_url, "--api-key", UPSTREAM_KEY, "--models", CHAT_MODEL)

    client = gateway.client(key)

    def chat() -> Any:
        return client.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}])

    raw, took = _poll(chat)
    assert took < 2.5, f"the gateway took {took:.2f}s to see the CLI's key and channel"
    body = json.loads(raw.http_response.text, parse_float=Decimal)
    assert body["model"] == CHAT_MODEL and body["choices"][0]["message"]["content"]
    cost = body["usage"]["cost"]
    assert isinstance(cost, Decimal) and cost > 0

    gateway.flush()
    shown = cli.ok("credits", "show", "bob@x.io", local=True).splitlines()
    assert shown[1] == f"balance:       ${Decimal(10) - cost}"
    assert shown[4] == f"total usage:   ${cost}"
    assert cli.ok("ledger", "check", local=True) == "ledger OK: 1 balances and 1 keys match their entries\n"

    # a price change reaches the running gateway's public model list
    cli.ok("model", "set", CHAT_MODEL, "--input-price", "0.77")

    def priced() -> None:
        listing = gateway.client(key).models.with_raw_response.list()
        entry = next(m for m in json.loads(listing.http_response.text)["data"] if m["id"] == CHAT_MODEL)
        assert entry["pricing_per_million_tokens"]["input"] == "0.77"

    _, took = _poll(priced)
    assert took < 2.5

    assert cli.ok("key", "revoke", "1") == "revoked key 1 'default'\n"

    def refused() -> None:
        try:
            client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}])
        except openai.AuthenticationError:
            return
        raise AssertionError("the revoked key still works")

    _, took = _poll(refused)
    assert took < 2.5, f"the revoked key kept working for {took:.2f}s"


def test_each_command_loads_with_its_own_module():
    """`tokenhub serve` imports the serve command's module and not the operator's commands (the gateway's
    idle memory); every command still resolves, under its own name."""
    probe = (
        "import sys\n"
        "import click\n"
        "from tokenhub.cli import COMMANDS, main\n"
        "ctx = click.Context(main)\n"
        "main.get_command(ctx, 'serve')\n"
        "print(sorted(m for m in sys.modules if m.startswith('tokenhub.cli.')))\n"
        "print(sorted(main.get_command(ctx, name).name for name in main.list_commands(ctx)) == sorted(COMMANDS))\n"
    )
    loaded, resolved = python_output(probe).strip().splitlines()
    assert loaded == "['tokenhub.cli.common', 'tokenhub.cli.serve']"
    assert resolved == "True"
    assert CliRunner().invoke(main, ["nothing-here"]).exit_code == 2  # click's usage error, as before
