import os
from click.testing import CliRunner
from tokenhub.cli import main
def test_x(tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith("TOKENHUB_"): monkeypatch.delenv(k)
    monkeypatch.setenv("TOKENHUB_HOME", str(tmp_path)); monkeypatch.setenv("TOKENHUB_SECRET_KEY", "x")
    r = CliRunner()
    import time; t=time.time()
    for i in range(10):
        res = r.invoke(main, ["user", "create", f"a{i}@b.io"])
        assert res.exit_code == 0, res.output
    res = r.invoke(main, ["user", "create", "a1@b.io"])
    print(time.time()-t, repr(res.stdout), repr(res.stderr), res.exit_code)
