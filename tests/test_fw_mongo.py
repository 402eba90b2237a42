"""Real-MongoDB LaunchPad configuration: fast, credential-free failures (no server needed)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from interphase_dft.errors import StoreError
from interphase_dft.fw.launchpad import open_launchpad, redact, resolve_launchpad

SECRET = "s3cretPW"


def test_redact_uri_and_key_values():
    text = (f"mongodb://alice:{SECRET}@127.0.0.1:1/db failed; "
            f"mongodb+srv://bob:{SECRET}@cluster0.x.mongodb.net; password: {SECRET}")
    out = redact(text)
    assert SECRET not in out
    assert "mongodb://alice:***@127.0.0.1:1/db" in out
    assert "mongodb+srv://bob:***@cluster0" in out
    assert redact("nothing secret here") == "nothing secret here"


@pytest.mark.parametrize("style", ["uri", "fields"])
def test_unreachable_mongodb_fails_fast_without_password(tmp_path, style):
    lpad = tmp_path / "my_launchpad.yaml"
    if style == "uri":
        lpad.write_text(f"host: mongodb://alice:{SECRET}@127.0.0.1:1/db\nuri_mode: true\n"
                        "name: db\n")
    else:
        lpad.write_text(f"host: 127.0.0.1\nport: 1\nname: db\nusername: alice\n"
                        f"password: {SECRET}\nauthsource: admin\n")
    cfg = resolve_launchpad(lpad)
    assert cfg.kind == "mongodb" and SECRET not in cfg.describe()
    t0 = time.monotonic()
    with pytest.raises(StoreError) as err:
        open_launchpad(cfg)
    elapsed = time.monotonic() - t0
    assert SECRET not in str(err.value) and "127.0.0.1" in str(err.value)
    assert elapsed < 30  # serverSelectionTimeoutMS=5000, not pymongo's 30 s default hang
    # the CLI: clear error, exit 1, no password anywhere in its output
    out = subprocess.run([sys.executable, "-m", "interphase_dft.cli", "status",
                          "--launchpad", str(lpad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "cannot use MongoDB" in out.stderr
    assert SECRET not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_launchpad_from_environment(tmp_path, monkeypatch):
    lpad = tmp_path / "lp.yaml"
    lpad.write_text("host: db.example.org\nport: 27017\nname: fw\n")
    monkeypatch.setenv("INTERPHASE_LAUNCHPAD", str(lpad))
    cfg = resolve_launchpad()
    assert cfg.kind == "mongodb" and cfg.yaml_path == lpad.resolve()
    monkeypatch.setenv("INTERPHASE_LAUNCHPAD", str(tmp_path / "missing.yaml"))
    with pytest.raises(Exception, match="not found"):
        resolve_launchpad()
