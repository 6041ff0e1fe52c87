"""Start real Prometheus and PostgreSQL servers on 127.0.0.1 for the test suite.

Plain helper module (no fixtures): tests and ``conftest.py`` import it and wrap the
context managers in fixtures as they see fit.

Design rules, because a leaked server or a hung wait poisons every later test run:

* every server listens on 127.0.0.1 only, on a free port, with a fresh data directory;
* every wait has a timeout and fails with a message that says what was last seen;
* every process we start is stopped by its pid in ``stop()``; ``__exit__`` always calls
  ``stop()``, and an ``atexit`` hook stops whatever a crashed test left running;
* a missing binary skips the test locally but fails it under ``CI=true`` (see
  :func:`need_component`), so CI can never go green by skipping the real-server tests.

Facts these helpers rely on (measured, see REAL-COMPONENTS.md): Prometheus 2.42 answers
``/-/ready`` within ~0.1 s but scrapes for the first time only ~5 s after start; PostgreSQL's
``initdb``/``pg_ctl`` refuse to run as root, hence ``runuser -u postgres`` when we are root.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pytest

__all__ = [
    "PostgresServer",
    "PrometheusQueryError",
    "PrometheusServer",
    "ServerError",
    "free_port",
    "in_ci",
    "need_component",
    "pid_running",
    "postgres_bin_dir",
    "postgres_unavailable_reason",
    "prometheus_path",
    "promtool_path",
    "require_postgres",
    "require_prometheus",
    "require_promtool",
    "start_postgres",
    "start_prometheus",
]

HOST = "127.0.0.1"
#: Hint appended to "missing component" messages: the one script that installs them.
INSTALL_HINT = "run scripts/install-system-deps.sh (as root, on Debian)"
#: Lines of a server's log quoted in error messages.
LOG_TAIL_LINES = 30
#: Per-request timeout for HTTP calls to Prometheus; a request never blocks a test longer.
HTTP_TIMEOUT = 5.0
#: Attempts to start a server when the port picked by free_port() was taken meanwhile.
PORT_ATTEMPTS = 3

_T = TypeVar("_T")


class ServerError(RuntimeError):
    """A test server failed to start, stop or reach an expected state in time."""


class PrometheusQueryError(ServerError):
    """The Prometheus HTTP API answered with ``status != "success"``."""


class _PortInUseError(ServerError):
    """Internal: the server lost the race for its port; the caller retries on another."""


# --------------------------------------------------------------------------- generic helpers


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now.

    The kernel picks it (bind to port 0). Another process may grab it before the server
    binds, which is why the ``start_*`` functions retry on "address already in use". A
    port is never handed out twice in one test session: the kernel may give a just
    released port again, and a test that asks for two (an app's and ``hypoprobe run``'s
    /metrics) would then start both servers on one port.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


_HANDED_OUT: set[int] = set()


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where missing components are errors."""
    return os.environ.get("CI") == "true"


def need_component(name: str, available: bool, hint: str = INSTALL_HINT) -> None:
    """Skip the calling test when ``name`` is unavailable locally; fail it under CI.

    A skip in CI would let a broken setup pass silently, so ``CI=true`` turns it into a
    failure. ``hint`` tells the reader how to get the component.
    """
    if available:
        return
    reason = f"{name} is not available; {hint}"
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing component is an error, never a skip)")
    pytest.skip(reason)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Last ``lines`` lines of a log file, for error messages; never raises."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<could not read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


def _poll(
    what: str,
    probe: Callable[[], tuple[bool, _T]],
    timeout: float,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> _T:
    """Call ``probe`` until it reports done; return its value or raise after ``timeout``.

    ``probe`` returns ``(done, value)``; the last value goes into the timeout message so a
    failure says what was last seen, and ``describe`` may add more diagnostics.
    """
    deadline = time.monotonic() + timeout
    while True:
        done, value = probe()
        if done:
            return value
        if time.monotonic() >= deadline:
            extra = f"\n{describe()}" if describe is not None else ""
            raise ServerError(
                f"timed out after {timeout:g}s waiting for {what}; last: {value!r}{extra}"
            )
        time.sleep(interval)


def pid_running(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie.

    Daemons such as the postmaster are not our children, so after they exit they can stay
    zombies until init reaps them; ``os.kill(pid, 0)`` alone would call those alive.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # /proc/PID/stat: "pid (comm) STATE ..."; comm may contain spaces or parentheses.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): trust os.kill
    return state not in ("Z", "X")


def _wait_pid_gone(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` is gone (or a zombie); return False on timeout."""
    deadline = time.monotonic() + timeout
    while pid_running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _stop_process(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """Stop one process we started, by its pid: SIGTERM, then SIGKILL after ``grace`` s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


# Servers started and not yet stopped; the atexit hook stops them if a test run dies
# between start and __exit__ (e.g. KeyboardInterrupt inside a fixture's setup).
_LIVE: set[PrometheusServer | PostgresServer] = set()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()


# --------------------------------------------------------------------------- binaries


def prometheus_path() -> str | None:
    """Path of the ``prometheus`` server binary, or None when it is not installed."""
    return shutil.which("prometheus")


def promtool_path() -> str | None:
    """Path of ``promtool``, or None when it is not installed."""
    return shutil.which("promtool")


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/<ver>/bin/initdb: sort "9.6" < "15" numerically, not as text.
    version = Path(path).parent.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def postgres_bin_dir() -> Path | None:
    """Directory holding ``initdb``/``pg_ctl``: Debian's newest version, else ``PATH``.

    Debian keeps the server binaries off ``PATH`` in /usr/lib/postgresql/<ver>/bin.
    """
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is not None and (Path(initdb).parent / "pg_ctl").exists():
        return Path(initdb).parent
    return None


def _is_root() -> bool:
    return os.geteuid() == 0


def _postgres_user() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def _runuser() -> str | None:
    # /usr/sbin may be missing from PATH in some environments; runuser lives there on Debian.
    return shutil.which("runuser") or (
        "/usr/sbin/runuser" if os.access("/usr/sbin/runuser", os.X_OK) else None
    )


def postgres_unavailable_reason() -> str | None:
    """Why :func:`start_postgres` cannot work here, or None when it can."""
    if postgres_bin_dir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl)"
    if _is_root():
        # initdb and postgres refuse to run as root; we drop to the `postgres` user.
        if _postgres_user() is None:
            return "running as root but there is no `postgres` user to run the server as"
        if _runuser() is None:
            return "running as root but `runuser` is missing"
    return None


def require_prometheus() -> str:
    """Return the prometheus binary, or skip (fail under CI) the calling test."""
    path = prometheus_path()
    need_component("prometheus server", path is not None)
    assert path is not None  # need_component did not return otherwise
    return path


def require_promtool() -> str:
    """Return the promtool binary, or skip (fail under CI) the calling test."""
    path = promtool_path()
    need_component("promtool", path is not None)
    assert path is not None
    return path


def require_postgres() -> Path:
    """Return the PostgreSQL bin dir, or skip (fail under CI) the calling test."""
    reason = postgres_unavailable_reason()
    need_component(f"PostgreSQL ({reason})", reason is None)
    bin_dir = postgres_bin_dir()
    assert bin_dir is not None
    return bin_dir


# --------------------------------------------------------------------------- Prometheus


class PrometheusServer:
    """A Prometheus server process on 127.0.0.1; use :func:`start_prometheus`.

    Context manager: ``__exit__`` stops the process, also when the body raised.
    """

    def __init__(
        self,
        binary: str,
        workdir: Path,
        config_path: Path,
        targets: Mapping[str, Sequence[str]],
        extra_flags: Sequence[str],
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.config_path = config_path
        self.targets = {job: list(addrs) for job, addrs in targets.items()}
        self.extra_flags = list(extra_flags)
        #: Prometheus's stderr (its whole log), kept in the test's tmp_path for post-mortems.
        self.log_path = workdir / "prometheus.stderr.log"
        self.port = 0
        self.data_dir = workdir / "data"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:9090``."""
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Pid of the server process while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _start(self, port: int, timeout: float) -> None:
        self.port = port
        # A fresh TSDB per start: samples from an earlier attempt must never leak into a test.
        shutil.rmtree(self.data_dir, ignore_errors=True)
        cmd = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={HOST}:{port}",
            *self.extra_flags,
        ]
        with self.log_path.open("ab") as log:
            log.write(f"$ {shlex.join(cmd)}\n".encode())
            log.flush()
            # start_new_session: Ctrl-C in the terminal goes to pytest, which then stops the
            # server itself in __exit__, instead of the server dying mid-test on its own.
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.workdir,
                start_new_session=True,
            )
        _LIVE.add(self)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                log = _tail(self.log_path)
                if "address already in use" in log:
                    raise _PortInUseError(f"port {self.port} was taken")
                raise ServerError(
                    f"prometheus exited with code {self._proc.returncode} during startup; "
                    f"log {self.log_path}:\n{log}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:  # 503 while the TSDB is still opening
                last = f"HTTP {exc.code}"
            except OSError as exc:  # connection refused until the listener is up
                last = str(exc)
            time.sleep(0.05)
        raise ServerError(
            f"prometheus not ready on {self.url} after {timeout:g}s (last: {last}); "
            f"log {self.log_path}:\n{_tail(self.log_path)}"
        )

    def stop(self) -> None:
        """Stop the server by pid (SIGTERM, SIGKILL after 10 s) and wait for it. Idempotent."""
        _LIVE.discard(self)
        if self._proc is not None:
            _stop_process(self._proc)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- HTTP API ----------------------------------------------------------------------

    def api(self, path: str, params: Mapping[str, str | float] | None = None) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; raise on ``status != success``."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode({k: str(v) for k, v in params.items()})
        try:
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            # Bad PromQL answers 400/422 with a JSON body that says what is wrong.
            body = exc.read()
            if not body:
                raise PrometheusQueryError(f"GET {url}: HTTP {exc.code}") from exc
        except OSError as exc:
            raise ServerError(
                f"GET {url} failed: {exc}; prometheus running={self.running}, "
                f"log {self.log_path}:\n{_tail(self.log_path, 10)}"
            ) from exc
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise PrometheusQueryError(f"GET {url}: not JSON: {body[:200]!r}") from exc
        if doc.get("status") != "success":
            raise PrometheusQueryError(
                f"GET {url}: status={doc.get('status')!r} "
                f"errorType={doc.get('errorType')!r} error={doc.get('error')!r}"
            )
        return doc["data"]

    def query(self, expr: str, time: float | None = None) -> list[dict[str, Any]]:
        """Instant query; return the result list (``[{"metric": {...}, "value": [ts, "v"]}]``).

        Scalar and string results are wrapped as one element with an empty ``metric`` so
        callers always get a list of dicts.
        """
        params: dict[str, str | float] = {"query": expr}
        if time is not None:
            params["time"] = time
        data = self.api("query", params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_value(self, expr: str, time: float | None = None) -> float | None:
        """Value of an instant query with at most one series; None when it is empty."""
        result = self.query(expr, time)
        if not result:
            return None
        if len(result) > 1:
            metrics = [series["metric"] for series in result]
            raise PrometheusQueryError(f"{expr!r} returned {len(result)} series: {metrics}")
        return float(result[0]["value"][1])

    def query_range(
        self, expr: str, start: float, end: float, step: float | str = 1.0
    ) -> list[dict[str, Any]]:
        """Range query; return the result list (``[{"metric": {...}, "values": [...]}]``)."""
        data = self.api("query_range", {"query": expr, "start": start, "end": end, "step": step})
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets_summary(self, job: str | None = None) -> str:
        """One line per active target (health, last scrape, last error): for error messages."""
        try:
            data = self.api("targets", {"state": "active"})
        except ServerError as exc:
            return f"targets API unavailable: {exc}"
        lines = [
            f"  {t['labels'].get('job')} {t['scrapeUrl']} health={t['health']} "
            f"lastScrape={t['lastScrape']} lastError={t['lastError']!r}"
            for t in data["activeTargets"]
            if job is None or t["labels"].get("job") == job
        ]
        return "targets:\n" + ("\n".join(lines) or "  <none>")

    def _expected_targets(self, job: str, n_targets: int | None) -> int:
        if n_targets is not None:
            return n_targets
        if job not in self.targets:
            raise ValueError(f"job {job!r} is not configured; jobs: {sorted(self.targets)}")
        return len(self.targets[job])

    def wait_for_up(self, job: str, n_targets: int | None = None, timeout: float = 30.0) -> None:
        """Wait until ``up{job=...}`` is 1 for ``n_targets`` targets (default: all configured).

        The first scrape happens ~5 s after Prometheus starts whatever the interval, so call
        this before generating load, or the load lands before any sample exists.
        """
        expected = self._expected_targets(job, n_targets)
        expr = f"up{{job={json.dumps(job)}}}"

        def probe() -> tuple[bool, dict[str, str]]:
            seen = {s["metric"].get("instance", "?"): s["value"][1] for s in self.query(expr)}
            ok = sum(1 for v in seen.values() if v == "1")
            return ok >= expected, seen

        _poll(
            f"{expected} target(s) of job {job!r} to be up",
            probe,
            timeout,
            interval=0.2,
            describe=lambda: self.targets_summary(job),
        )

    def wait_for_scrape_after(
        self, t: float, job: str, n_targets: int | None = None, timeout: float = 30.0
    ) -> None:
        """Wait until every target of ``job`` was scraped successfully at or after wall time ``t``.

        Use it after the last event of a test (``t = time.time()``) to be sure the final
        counts are in the TSDB. It checks ``timestamp(up)``, not the targets API: ``up`` is
        committed together with the scraped samples, while the API's ``lastScrape`` is set
        before they are appended, so it can run ahead of what queries see.
        """
        expected = self._expected_targets(job, n_targets)
        sel = f"up{{job={json.dumps(job)}}}"
        # `and` matches on all labels but __name__, so this keeps the successful scrapes
        # whose sample timestamp (the scrape's start) is at or after t.
        expr = f"({sel} == 1) and (timestamp({sel}) >= {t!r})"

        def probe() -> tuple[bool, int]:
            fresh = len(self.query(expr))
            return fresh >= expected, fresh

        _poll(
            f"{expected} target(s) of job {job!r} scraped successfully after t={t:.3f} "
            f"(now {time.time():.3f})",
            probe,
            timeout,
            interval=0.1,
            describe=lambda: self.targets_summary(job),
        )


def start_prometheus(
    tmp_path: Path,
    targets: Mapping[str, Sequence[str]],
    *,
    scrape_interval: str = "1s",
    rule_files: Sequence[Path] | None = None,
    extra_flags: Sequence[str] = (),
    timeout: float = 30.0,
) -> PrometheusServer:
    """Start Prometheus on a free 127.0.0.1 port, scraping ``targets``; wait for ``/-/ready``.

    ``targets`` maps a job name to its ``"127.0.0.1:PORT"`` targets. ``extra_flags`` go to
    the command line as-is (e.g. ``--enable-feature=exemplar-storage``). The config, the
    TSDB and Prometheus's log live in a new directory under ``tmp_path``. Use the result as
    a context manager so the server is always stopped.
    """
    binary = prometheus_path()
    if binary is None:
        raise ServerError(f"prometheus binary not found on PATH; {INSTALL_HINT}")
    tmp_path.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="prometheus-", dir=tmp_path))
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(Path(p).resolve()) for p in rule_files or ()],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(addrs)}]}
            for job, addrs in targets.items()
        ],
    }
    config_path = workdir / "prometheus.yml"
    # JSON is valid YAML, and json.dumps quotes every string correctly.
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    server = PrometheusServer(binary, workdir, config_path, targets, extra_flags)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            server._start(free_port(), timeout)
        except _PortInUseError:
            if attempt == PORT_ATTEMPTS:
                raise
            continue
        return server
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- PostgreSQL


def _client_env() -> dict[str, str]:
    # PGHOST/PGPORT/PGDATABASE/... from the developer's shell would redirect our clients
    # to some other server; drop them all and bound connection attempts.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1; use :func:`start_postgres`.

    Context manager: ``__exit__`` stops the server (``pg_ctl -m fast stop``, then SIGKILL
    by pid as a fallback) and removes its data directory, also when the body raised.
    """

    user = "postgres"
    dbname = "hypoprobe_test"
    host = HOST

    def __init__(self, bin_dir: Path, base_dir: Path, log_copy: Path) -> None:
        self.bin_dir = bin_dir
        #: Private dir outside tmp_path (pytest's tmp dirs are 0700 root, the `postgres`
        #: user could not enter them): data dir, socket dir and server log.
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir
        self.server_log = base_dir / "postgres.log"
        #: Where the server log is copied on stop, so it survives the data dir's removal.
        self.log_copy = log_copy
        self.port = 0
        self.pid: int | None = None
        self._started = False

    @property
    def dsn(self) -> str:
        """libpq URI, e.g. ``postgresql://postgres@127.0.0.1:5433/hypoprobe_test``."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def _as_server_user(self, cmd: Sequence[str]) -> list[str]:
        # initdb, pg_ctl and postgres refuse to run as root.
        if _is_root():
            runuser = _runuser()
            if runuser is None:
                raise ServerError("running as root but `runuser` is missing")
            return [runuser, "-u", self.user, "--", *cmd]
        return list(cmd)

    def _run(
        self, cmd: Sequence[str], what: str, timeout: float, *, as_server: bool
    ) -> subprocess.CompletedProcess[str]:
        full = self._as_server_user(cmd) if as_server else list(cmd)
        try:
            # cwd=base_dir: the `postgres` user may not be allowed into our cwd.
            proc = subprocess.run(
                full,
                cwd=self.base_dir,
                env=_client_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerError(
                f"{what} timed out after {timeout:g}s: {shlex.join(full)}\n"
                f"server log:\n{_tail(self.server_log)}"
            ) from exc
        if proc.returncode != 0:
            raise ServerError(
                f"{what} failed (exit {proc.returncode}): {shlex.join(full)}\n"
                f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}\n"
                f"server log:\n{_tail(self.server_log)}"
            )
        return proc

    def _initdb(self, timeout: float) -> None:
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",  # superuser named `postgres` also when not root, so the DSN is fixed
                self.user,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",  # exists everywhere; the host's locale settings do not matter
                "--no-sync",
            ],
            "initdb",
            timeout,
            as_server=True,
        )

    def _start(self, port: int, timeout: float) -> None:
        self.port = port
        opts = (
            f"-c listen_addresses={HOST} -p {port} -k {shlex.quote(str(self.socket_dir))} "
            "-c fsync=off"
        )
        # -l: the server must not inherit our stdout pipe, or subprocess.run would wait for
        # the server's exit instead of pg_ctl's.
        cmd = [
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.server_log),
            "-o",
            opts,
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        ]
        self._started = True
        _LIVE.add(self)
        try:
            self._run(cmd, "pg_ctl start", timeout + 5, as_server=True)
        except ServerError as exc:
            self._kill_postmaster()
            self._started = False
            if "Address already in use" in _tail(self.server_log, 5):
                raise _PortInUseError(f"port {port} was taken") from exc
            raise
        self.pid = self._read_pid()

    def _read_pid(self) -> int | None:
        # First line of postmaster.pid is the postmaster's pid.
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _kill_postmaster(self) -> None:
        # Fallback when pg_ctl could not stop (or start) the server cleanly.
        pid = self._read_pid() or self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        # Not our child (pg_ctl daemonised it), so wait by polling; bounded.
        _wait_pid_gone(pid, 10)

    def createdb(self, name: str, timeout: float = 30.0) -> None:
        """Create database ``name`` (the server is running and trusts 127.0.0.1)."""
        self._run(
            [
                str(self.bin_dir / "createdb"),
                "-h",
                HOST,
                "-p",
                str(self.port),
                "-U",
                self.user,
                name,
            ],
            f"createdb {name}",
            timeout,
            as_server=False,
        )

    def psql(self, sql: str, timeout: float = 30.0) -> str:
        """Run ``sql`` with the ``psql`` binary against :attr:`dsn`; return unaligned output."""
        proc = self._run(
            [
                str(self.bin_dir / "psql"),
                "-X",  # ignore ~/.psqlrc
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.dsn,
                "-c",
                sql,
            ],
            "psql",
            timeout,
            as_server=False,
        )
        return proc.stdout.strip()

    def stop(self) -> None:
        """Stop the server (fast shutdown), keep a copy of its log, remove its files.

        Idempotent; falls back to SIGKILL by pid when ``pg_ctl stop`` fails.
        """
        _LIVE.discard(self)
        if self._started:
            self._started = False
            try:
                self._run(
                    [
                        str(self.bin_dir / "pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        "30",
                        "stop",
                    ],
                    "pg_ctl stop",
                    35,
                    as_server=True,
                )
                # pg_ctl -w returns once postmaster.pid is gone, which the postmaster
                # removes just before it exits: wait for the process itself too.
                if self.pid is not None and not _wait_pid_gone(self.pid, 10):
                    self._kill_postmaster()
            except ServerError:
                self._kill_postmaster()
        if self.base_dir.exists():
            with contextlib.suppress(OSError):
                shutil.copyfile(self.server_log, self.log_copy)
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_postgres(tmp_path: Path, timeout: float = 30.0) -> PostgresServer:
    """Start a fresh PostgreSQL cluster on a free 127.0.0.1 port with database ``hypoprobe_test``.

    As root the cluster belongs to, and runs as, the ``postgres`` user (``runuser``);
    otherwise as the current user. Authentication is ``trust``: connect with
    :attr:`PostgresServer.dsn`. The server log is copied to ``tmp_path`` on stop.
    """
    reason = postgres_unavailable_reason()
    if reason is not None:
        raise ServerError(f"cannot start PostgreSQL: {reason}; {INSTALL_HINT}")
    bin_dir = postgres_bin_dir()
    assert bin_dir is not None
    tmp_path.mkdir(parents=True, exist_ok=True)
    # Outside tmp_path: pytest's tmp dirs are private to root, and the Unix socket path
    # must stay short (~107 bytes).
    base_dir = Path(tempfile.mkdtemp(prefix="hypoprobe-pg-"))
    if _is_root():
        owner = _postgres_user()
        assert owner is not None
        os.chown(base_dir, owner.pw_uid, owner.pw_gid)
    fd, log_name = tempfile.mkstemp(prefix="postgres-", suffix=".log", dir=tmp_path)
    os.close(fd)
    log_copy = Path(log_name)
    server = PostgresServer(bin_dir, base_dir, log_copy)
    try:
        server._initdb(timeout)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                server._start(free_port(), timeout)
                break
            except _PortInUseError:
                if attempt == PORT_ATTEMPTS:
                    raise
        server.createdb(server.dbname, timeout)
    except BaseException:
        server.stop()
        raise
    return server
