"""``tokenhub user disable / enable``: the same service (and rules) as the console and the admin API."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tokenhub.cli import main


def run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {"TOKENHUB_HOME": str(tmp_path), "TOKENHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'th.db'}", "TOKENHUB_SECRET_KEY": "s"}
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_disable_and_enable_from_the_cli(tmp_path: Path) -> None:
    assert run(tmp_path, "user", "create", "boss@x.io", "--admin")[0] == 0
    assert run(tmp_path, "user", "create", "bob@x.io")[0] == 0
    code, out, _ = run(tmp_path, "user", "disable", "bob@x.io")
    assert code == 0 and out.startswith("disabled bob@x.io")
    code, out, _ = run(tmp_path, "user", "enable", "BOB@x.io")
    assert code == 0 and out.startswith("enabled bob@x.io")
    # the last admin is kept, and an unknown user is an error, not a traceback
    code, _, err = run(tmp_path, "user", "disable", "boss@x.io")
    assert code == 1 and err.startswith("error: this is the last enabled admin")
    code, _, err = run(tmp_path, "user", "disable", "nobody@x.io")
    assert code == 1 and err.startswith("error: no user")
