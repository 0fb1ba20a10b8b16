"""Shared helpers for the benchmarks in bench/ (not a test; nothing here asserts a time).

Every benchmark:
* runs against a throw-away CHURN_HOME under /tmp (never the repository's .churn/),
* listens and connects on 127.0.0.1 only,
* is bounded (a fixed count of runs/requests and a wall-clock cap),
* stops every process it started by its PID / process group (``Cleanup``),
* prints a short table and writes JSON to bench/results/<name>.json,
* reports medians and ratios against a peer measured in the same run, plus os.getloadavg().
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
VENV_PY = ROOT / ".venv" / "bin" / "python"
MLFLOW_VENV = BENCH / ".mlflow-venv"
REFERENCE_CSV = ROOT.parent / "shared" / "data" / "telecom_churn.csv"
SEED_ROW = [128, 1, 1, 2.70, 1, 265.1, 110, 89.0, 9.87, 10.0]
FEATURES = ["AccountWeeks", "ContractRenewal", "DataPlan", "DataUsage", "CustServCalls", "DayMins", "DayCalls",
            "MonthlyCharge", "OverageFee", "RoamMins"]

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from churn_core.processes.detached import kill_group  # noqa: E402  (re-exported for the bench scripts)


# ------------------------------------------------------------------------------ numbers


def median(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-q * len(ordered) // 100))
    return ordered[min(int(rank), len(ordered)) - 1]


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    info = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_start": loadavg(),
    }
    try:
        import numpy, pandas, sklearn  # noqa: E401

        info.update(numpy=numpy.__version__, pandas=pandas.__version__, sklearn=sklearn.__version__)
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def print_table(title: str, headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    sys.stdout.flush()


def write_results(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg_at_end": loadavg(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    print(f"\nresults written to {path.relative_to(ROOT)}")
    return path


# ------------------------------------------------------------------------------ processes


class Cleanup:
    """Stops what a benchmark started, by PID/process group, on normal exit, Ctrl-C or SIGTERM."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, Callable[[], None]]] = []
        self.done = False
        atexit.register(self.run)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, _frame) -> None:
        self.run()
        sys.exit(128 + signum)

    def add(self, what: str, action: Callable[[], None]) -> None:
        self.actions.append((what, action))

    def add_group(self, what: str, pid: int) -> None:
        """A process started with start_new_session=True: kill its whole group (it leads it)."""
        self.add(what, lambda: kill_group(pid))

    def run(self) -> None:
        if self.done:
            return
        self.done = True
        for what, action in reversed(self.actions):
            try:
                action()
            except Exception as exc:  # keep cleaning the rest
                print(f"cleanup of {what} failed: {type(exc).__name__}: {exc}", file=sys.stderr)


def temp_home(cleanup: Cleanup, prefix: str) -> Path:
    """A fresh CHURN_HOME under /tmp for this run (removed at the end, after the platform cleaned up)."""
    home = Path(tempfile.mkdtemp(prefix=f"churn-{prefix}-"))
    os.environ["CHURN_HOME"] = str(home)
    os.environ["CHURN_BACKEND"] = "local"
    for key in ("CHURN_S3_BUCKET", "AWS_ENDPOINT_URL"):
        os.environ.pop(key, None)
    cleanup.add(f"remove {home}", lambda: shutil.rmtree(home, ignore_errors=True))
    return home


def start_warm_process(cleanup: Cleanup) -> dict:
    """A warm process in a folder of this run's; seconds until it answers (paid once per code version)."""
    from churn_core.processes.warm import client as warm

    folder = Path(tempfile.mkdtemp(prefix="churn-bench-warm-"))
    os.environ["CHURN_WARM_DIR"] = str(folder)
    os.environ.pop("CHURN_WARM", None)
    started = time.perf_counter()
    warm.ensure_running()
    if not warm.wait_until_ready(120):
        raise RuntimeError(f"the warm process did not answer; see {folder / 'warm.log'}")
    seconds = time.perf_counter() - started
    pid = int((folder / f"{warm.fingerprint()}.pid").read_text())
    cleanup.add(f"stop the warm process {pid}", lambda: (warm.stop_all(), shutil.rmtree(folder, ignore_errors=True)))
    return {"seconds_to_ready": round(seconds, 3), "pid": pid}


@contextmanager
def without_warm_process():
    """The peer runs: every process the platform starts inside is a plain interpreter (CHURN_WARM=0)."""
    os.environ["CHURN_WARM"] = "0"
    try:
        yield
    finally:
        os.environ.pop("CHURN_WARM")


def platform_cleanup(cleanup: Cleanup, p) -> None:
    """Delete every endpoint (kills supervisor + server by PID group) and stop running jobs."""

    def stop_all() -> None:
        for job in p.catalog.query("SELECT name FROM jobs WHERE status IN ('InProgress', 'Stopping')"):
            try:
                p.stop_training(job["name"])
            except Exception:
                pass
        p.cleanup()

    cleanup.add("platform endpoints and jobs", stop_all)


def children_cpu() -> float:
    """User + system CPU seconds of this process's terminated, waited-for children so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(cmd: list[str], env: dict | None = None, cwd: str | None = None,
              timeout: float = 300) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command; returns (wall seconds, CompletedProcess). ``proc.cpu_seconds`` = its user+sys CPU."""
    cpu0 = children_cpu()
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    proc.cpu_seconds = children_cpu() - cpu0  # type: ignore[attr-defined]
    return wall, proc


def wait_child_cpu(pid: int) -> float | None:
    """Reap our (already finished or finishing) child ``pid``; its CPU seconds incl. the children it waited for."""
    deadline = time.monotonic() + 30
    while True:
        try:
            got, _, usage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            return None  # not ours, or already reaped by someone else
        if got == pid:
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def wait_http(url: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> float:
    """Poll GET url until 200; returns seconds waited. Raises on timeout or if proc died."""
    import urllib.error
    import urllib.request

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


# ------------------------------------------------------------------------------ HTTP load


def load(
    host: str,
    port: int,
    path: str,
    body: bytes,
    headers: dict,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    check: Callable[[int, bytes], bool] | None = None,
    warmup: int = 20,
    sample_every: float | None = None,
    sampler: Callable[[], dict] | None = None,
    keep_latencies: bool = False,
) -> dict:
    """Closed-loop load: ``concurrency`` threads, each with one keep-alive http.client connection.

    Stops after ``max_requests`` requests in total or ``max_seconds``, whichever comes first.
    Returns latencies (ms), error count (non-2xx, failed check, exceptions), requests/s.
    """
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    errors: list[str] = []
    samples: list[dict] = []
    stop_at = [0.0]

    def connect() -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(host, port, timeout=70)
        conn.connect()
        return conn

    def one(conn: http.client.HTTPConnection) -> tuple[int, bytes]:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.getheader("Connection", "").lower() == "close":
            conn.close()
        return resp.status, data

    # warm-up on one connection (first requests load lazily imported code paths)
    conn = connect()
    for _ in range(warmup):
        status, data = one(conn)
        if status >= 400:
            raise RuntimeError(f"warm-up request failed: HTTP {status}: {data[:300]!r}")
    conn.close()

    def worker() -> None:
        nonlocal issued
        conn = connect()
        local: list[float] = []
        try:
            while True:
                with lock:
                    if issued >= max_requests or time.perf_counter() >= stop_at[0]:
                        break
                    issued += 1
                t0 = time.perf_counter()
                try:
                    status, data = one(conn)
                    ok = 200 <= status < 300 and (check is None or check(status, data))
                    if not ok:
                        with lock:
                            errors.append(f"HTTP {status}: {data[:200]!r}")
                except Exception as exc:  # connection reset, timeout...
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    conn.close()
                    try:
                        conn = connect()
                    except OSError:
                        time.sleep(0.05)
                    continue
                local.append((time.perf_counter() - t0) * 1000.0)
        finally:
            conn.close()
            with lock:
                latencies.extend(local)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    stop_at[0] = started + max_seconds
    for t in threads:
        t.start()
    if sampler is not None and sample_every:
        next_sample = started
        while any(t.is_alive() for t in threads):
            now = time.perf_counter()
            if now >= next_sample:
                samples.append({"t": round(now - started, 2), **sampler()})
                next_sample = now + sample_every
            time.sleep(0.2)
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    done = len(latencies)
    return {
        "concurrency": concurrency,
        "requests_ok": done,
        "errors": len(errors),
        "error_examples": errors[:5],
        "seconds": round(elapsed, 3),
        "throughput_rps": round(done / elapsed, 1) if elapsed else None,
        "p50_ms": round(percentile(latencies, 50), 3) if latencies else None,
        "p90_ms": round(percentile(latencies, 90), 3) if latencies else None,
        "p99_ms": round(percentile(latencies, 99), 3) if latencies else None,
        "max_ms": round(max(latencies), 3) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies), 3) if latencies else None,
        "loadavg": loadavg(),
        **({"samples": samples} if samples else {}),
        **({"latencies_ms": latencies} if keep_latencies else {}),
    }


def load_rounds(
    targets: dict, concurrency: int, rounds: int, max_requests: int, max_seconds: float, warmup: int = 20,
    server_pids: dict | None = None,
) -> dict:
    """Alternate the targets round by round (A B, B A, A B, ...) under the same load pattern, so the
    machine's changing background load hits each alike. ``targets``: name -> (port, body, headers, check).

    Per target: merged latencies (p50/p99), throughput = requests / seconds over all rounds, errors;
    plus each round's throughput (for per-round ratios). With ``server_pids`` (name -> server PID), also
    the server's CPU milliseconds per answered request (user + sys of the PID and its children, read
    around each of its rounds): CPU time depends much less on the machine's load than wall time.
    """
    merged = {k: {"lat": [], "seconds": 0.0, "errors": 0, "examples": [], "rounds_rps": [], "cpu": 0.0, "n": 0}
              for k in targets}
    names = list(targets)
    for r in range(rounds):
        for name in names if r % 2 == 0 else list(reversed(names)):
            port, body, headers, check = targets[name]
            pid = (server_pids or {}).get(name)
            cpu0 = process_tree_cpu(pid) if pid else None
            res = load(
                "127.0.0.1",
                port,
                "/invocations",
                body,
                headers,
                concurrency,
                max(1, max_requests // rounds),
                max_seconds / rounds,
                check=check,
                warmup=warmup if r == 0 else 2,
                keep_latencies=True,
            )
            m = merged[name]
            m["lat"].extend(res["latencies_ms"])
            m["seconds"] += res["seconds"]
            m["errors"] += res["errors"]
            m["examples"].extend(res["error_examples"])
            m["rounds_rps"].append(res["throughput_rps"])
            if cpu0 is not None:
                m["cpu"] += process_tree_cpu(pid) - cpu0
                m["n"] += res["requests_ok"] + res["errors"] + (warmup if r == 0 else 2)
    out = {}
    for name, m in merged.items():
        lat = m["lat"]
        out[name] = {
            "concurrency": concurrency,
            "rounds": rounds,
            "requests_ok": len(lat),
            "errors": m["errors"],
            "error_examples": m["examples"][:5],
            "seconds": round(m["seconds"], 3),
            "throughput_rps": round(len(lat) / m["seconds"], 1) if m["seconds"] else None,
            "rounds_rps": m["rounds_rps"],
            "p50_ms": round(percentile(lat, 50), 3) if lat else None,
            "p90_ms": round(percentile(lat, 90), 3) if lat else None,
            "p99_ms": round(percentile(lat, 99), 3) if lat else None,
            "max_ms": round(max(lat), 3) if lat else None,
            "loadavg": loadavg(),
        }
        if m["n"]:
            out[name]["server_cpu_ms_per_request"] = round(1000 * m["cpu"] / m["n"], 4)
    return out


def process_tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (gunicorn master + workers)."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def process_tree_rss(pid: int) -> dict:
    """RSS (MB) of a process and all its descendants (gunicorn master + workers)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {"total_mb": None, "processes": {}}
    per = {}
    for proc in procs:
        try:
            per[proc.pid] = round(proc.memory_info().rss / 1e6, 1)
        except psutil.NoSuchProcess:
            continue
    return {"total_mb": round(sum(per.values()), 1), "processes": per}
