"""``customer = "module:function"`` in the TOML: customers named with no code in the app.

The Flask app of tests/runapps/flaskapp never imports hypoprobe; the customer function
lives in a module of its own beside it, named only by the TOML. ``hypoprobe run`` loads
the file in the app's process, the Flask hook passes the function to the middleware, and
the kept multi-process directory holds the customers' sketches.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hypoprobe.errors import ConfigurationError
from test_run import APPS, _env

pytestmark = pytest.mark.slow

CUSTOMERS = """
import re

_ACCOUNT = re.compile(r"^/feed/(\\d+)$")


def of_request(environ):
    found = _ACCOUNT.match(environ.get("PATH_INFO", ""))
    return None if found is None else (int(found[1]), 100.0 + int(found[1]))
"""

DRIVE = """
from app import app
client = app.test_client()
for i in range(40):
    client.get(f"/feed/{i % 5}").close()
client.get("/pid").close()
print("done", flush=True)
"""

READ = """
import json, sys
import hypoprobe
hypoprobe.configure(multiproc_dir=sys.argv[1])
snap = hypoprobe.snapshot()
print(json.dumps([
    {"hypothesis": c.hypothesis, "kind": c.kind, "entries": len(c.entries),
     "requests": c.requests, "raw": sorted(str(h) for h in c.entries)}
    for c in snap.customers
]))
"""


def test_a_customer_function_named_in_the_toml_names_every_request(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(APPS / "flaskapp", app)
    (app / "billing.py").write_text(CUSTOMERS, encoding="utf-8")
    toml = (app / "perf.toml").read_text(encoding="utf-8")
    (app / "perf.toml").write_text('customer = "billing:of_request"\n\n' + toml, encoding="utf-8")
    keep = tmp_path / "keep"
    keep.mkdir()
    env = _env(tmp_path)
    env["HYPOPROBE_CUSTOMER_KEY"] = "run-customers-test-key-0001"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "hypoprobe", "run", "--config", "perf.toml"),
            *("--multiproc-dir", str(keep), "--metrics-port", "0", "--"),
            *(sys.executable, "-c", DRIVE),
        ],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"
    read = subprocess.run(
        [sys.executable, "-c", READ, str(keep)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    sketches = json.loads(read.stdout)
    seen = {s["hypothesis"]: s for s in sketches if s["kind"] == "seen"}
    # Five accounts behind 40 requests of GET /feed/{account}; /pid names nobody.
    assert seen["PERF-1"]["entries"] == 5
    assert seen["PERF-1"]["requests"] == 40
    # Hashed with the deployment's key: no raw account id is kept.
    assert not {"0", "1", "2", "3", "4"} & set(seen["PERF-1"]["raw"])


def test_a_bad_customer_value_is_a_configuration_error_with_its_line(tmp_path: Path) -> None:
    import hypoprobe

    path = tmp_path / "perf.toml"
    path.write_text('\n\ncustomer = "not a path"\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"perf\.toml:3: .*'customer' must be"):
        hypoprobe.load(path)


def test_an_unimportable_customer_function_is_a_fault_not_an_error(tmp_path: Path) -> None:
    from hypoprobe import _customerconfig

    lazy = _customerconfig.parse("no_such_module_anywhere:of", "perf.toml:1")
    assert lazy is not None
    assert lazy({"PATH_INFO": "/feed/1"}) is None  # logged and counted once, never raised
    assert lazy({"PATH_INFO": "/feed/2"}) is None
