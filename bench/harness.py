"""The one harness every benchmark in bench/ stands on (not a test: nothing here asserts a time).

A benchmark is a ``Bench``: options with a ``--quick`` mode, a throw-away CHURN_HOME under /tmp, every
process it started stopped by PID / process group (also on Ctrl-C or SIGTERM), runs interleaved with
the peers they are compared to (A B, B A, ...), and its figures printed as Markdown tables that are also
stored in bench/results/<name>.json, so report.py and run_all.py print them without knowing any
benchmark. Servers and clients use 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import platform as host
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
VENV_PY = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PY if VENV_PY.exists() else sys.executable)
MLFLOW_VENV = BENCH / ".mlflow-venv"
ENTRY = ROOT / "entry" / "train.py"
# ../shared/data beside the checkout (a worktree under /work/wt/<name> finds /work/shared the same way)
REFERENCE_CSV = next((d / "shared" / "data" / "telecom_churn.csv" for d in ROOT.parents
                      if (d / "shared" / "data" / "telecom_churn.csv").exists()), ROOT.parent / "shared" / "data"
                     / "telecom_churn.csv")
SEED_ROW = [128, 1, 1, 2.70, 1, 265.1, 110, 89.0, 9.87, 10.0]
FEATURES = ["AccountWeeks", "ContractRenewal", "DataPlan", "DataUsage", "CustServCalls", "DayMins", "DayCalls",
            "MonthlyCharge", "OverageFee", "RoamMins"]
JSON = {"Content-Type": "application/json", "Accept": "application/json"}
CSV = {"Content-Type": "text/csv", "Accept": "application/json"}
UNCAPPED = 10**9  # a comparison that runs for a fixed time per round, not a request count
VARIANT = "X-Amzn-Invoked-Production-Variant"  # which production variant answered

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from churn_core.processes.detached import kill_group  # noqa: E402


# ------------------------------------------------------------------------------ numbers and tables


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(int(max(1, -(-q * len(ordered) // 100))), len(ordered)) - 1]


def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
    return None if a is None or not b else round(a / b, digits)


def spread(values, digits: int = 3) -> dict:
    """Median with min and max: how far the runs of one side were apart."""
    values = [v for v in values if v is not None]
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": round(min(values), digits), "median": round(median(values), digits),
            "max": round(max(values), digits)}


def medians(runs: list[dict]) -> dict:
    """Per key, the median over runs (dicts of the same numeric keys)."""
    return {k: median(r.get(k) for r in runs) for k in runs[0]}


def latency_stats(lat: list[float]) -> dict:
    if not lat:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    return {"p50_ms": round(percentile(lat, 50), 3), "p90_ms": round(percentile(lat, 90), 3),
            "p99_ms": round(percentile(lat, 99), 3), "max_ms": round(max(lat), 3),
            "mean_ms": round(statistics.fmean(lat), 3)}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    info = {"cpu_count": os.cpu_count(), "platform": host.platform(), "python": host.python_version(),
            "loadavg_at_start": loadavg()}
    import numpy, pandas, sklearn  # noqa: E401

    info.update(numpy=numpy.__version__, pandas=pandas.__version__, sklearn=sklearn.__version__)
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            info["cpu_model"] = line.split(":", 1)[1].strip()
            break
    return info


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}f}"
    return str(value)


def markdown(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows])


# ------------------------------------------------------------------------------ the benchmark run


class Cleanup:
    """Stops what a benchmark started, by PID / process group, on normal exit, Ctrl-C or SIGTERM."""

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


class Bench:
    """One run of one benchmark: its options, its scratch space, what it started, its results and tables.

    ``options``: name -> default or (default, help); a True default becomes ``--no-<name>``, a list
    ``nargs="+"``. ``quick``: the values ``--quick`` (alias ``--short``, as run_all.py passes) sets."""

    def __init__(self, name: str, doc: str, options: dict, quick: dict, argv: list[str] | None = None) -> None:
        parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        for key, spec in options.items():
            default, helptext = spec if isinstance(spec, tuple) else (spec, None)
            flag = "--" + key.replace("_", "-")
            if isinstance(default, bool):
                parser.add_argument(f"--no-{flag[2:]}" if default else flag, dest=key, help=helptext,
                                    action="store_false" if default else "store_true")
            elif isinstance(default, list):
                parser.add_argument(flag, dest=key, type=type(default[0]), nargs="+", default=default, help=helptext)
            else:
                parser.add_argument(flag, dest=key, type=type(default), default=default, help=helptext)
        parser.add_argument("--quick", "--short", dest="quick", action="store_true",
                            help="smoke run: " + ", ".join(f"{k}={v}" for k, v in quick.items()))
        self.parser = parser
        self.opts = parser.parse_args(argv)
        if self.opts.quick:
            vars(self.opts).update(quick)
        self.name = f"bench_{name}"
        self.cleanup = Cleanup()
        self.tables: list[str] = []
        self.results: dict = {"machine": machine(), "options": vars(self.opts), "headline": [], "tables": self.tables}
        print(f"{self.name}: {os.cpu_count()} cores, load average {loadavg()}", flush=True)

    def home(self, prefix: str | None = None) -> Path:
        """A fresh CHURN_HOME under /tmp for this run (removed at the end, after the platform cleaned up)."""
        home = self.home_dir = self.scratch(f"churn-{prefix or self.name}-")
        os.environ.update(CHURN_HOME=str(home), CHURN_BACKEND="local")
        for key in ("CHURN_S3_BUCKET", "AWS_ENDPOINT_URL"):
            os.environ.pop(key, None)
        return home

    def scratch(self, prefix: str, dir: Path | None = None) -> Path:
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=dir))
        self.cleanup.add(f"remove {folder}", lambda: shutil.rmtree(folder, ignore_errors=True))
        return folder

    def platform(self, warm: bool = True):
        """churn_core.connect() in a fresh home, with a warm process of this run's (the platform would start
        one on its first job or deploy, and leave it running); its start-up is reported when ``warm``. At
        the end every endpoint is deleted, every running job and the warm process stopped."""
        self.home()
        started = self.start_warm_process()
        if warm:
            self.results["warm_process"] = started
            print(f"warm process ready in {started['seconds_to_ready']:.2f}s")
        import churn_core

        p = churn_core.connect()

        def stop_all() -> None:
            for job in p.catalog.query("SELECT name FROM jobs WHERE status IN ('InProgress', 'Stopping')"):
                try:
                    p.stop_training(job["name"])
                except Exception:
                    pass
            p.cleanup()

        self.cleanup.add("platform endpoints and jobs", stop_all)
        return p

    def start_warm_process(self) -> dict:
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
        self.cleanup.add(f"stop the warm process {pid}",
                         lambda: (warm.stop_all(), shutil.rmtree(folder, ignore_errors=True)))
        return {"seconds_to_ready": round(seconds, 3), "pid": pid}

    def spawn(self, cmd: list[str], log: Path, env: dict | None = None, cwd: Path = ROOT) -> subprocess.Popen:
        """A process in its own session, output to ``log``; its group is stopped at the end."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=str(cwd), start_new_session=True)
        self.cleanup.add_group(f"{Path(cmd[0]).name} {proc.pid}", proc.pid)
        return proc

    def table(self, title: str, headers: list[str], rows: list[list]) -> None:
        self.text(f"{title}\n\n{markdown(headers, rows)}")

    def text(self, text: str) -> None:
        self.tables.append(text)
        print(f"\n{text}", flush=True)

    def headline(self, line: str) -> None:
        """One line of run_all.py's summary."""
        self.results["headline"].append(line)

    def finish(self, **results) -> int:
        self.results.update(results)
        RESULTS.mkdir(parents=True, exist_ok=True)
        data = {"benchmark": self.name, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "loadavg_at_end": loadavg(), **self.results}
        path = RESULTS / f"{self.name}.json"
        path.write_text(json.dumps(data, indent=1, default=str) + "\n")
        print("\n" + "\n".join(self.results["headline"]) + f"\nload average now {loadavg()}; results in "
              f"{path.relative_to(ROOT)}", flush=True)
        self.cleanup.run()
        return 0


@contextmanager
def in_background(loop: Callable[[threading.Event], Any], settle: float = 0.0):
    """``loop(stop)`` in a thread for the duration of the block (``settle`` s to get going first)."""
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(stop,), daemon=True)
    thread.start()
    time.sleep(settle)
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)


@contextmanager
def without_warm_process():
    """The peer runs: every process the platform starts inside is a plain interpreter (CHURN_WARM=0)."""
    os.environ["CHURN_WARM"] = "0"
    try:
        yield
    finally:
        os.environ.pop("CHURN_WARM")


# ------------------------------------------------------------------------------ timing


def interleave(runners: dict[str, Callable[[int], Any]], rounds: int) -> dict[str, list]:
    """Run every side once a round, the order reversed every other round (A B, B A, ...), so the
    machine's changing background load hits each alike. A runner gets the round number."""
    out: dict[str, list] = {name: [] for name in runners}
    for r in range(rounds):
        for name in list(runners) if r % 2 == 0 else list(reversed(runners)):
            out[name].append(runners[name](r))
    return out


def timeit(fns: dict[str, Callable[[], Any]], reps: int, warm: int = 5) -> dict:
    """In-process timing, interleaved (each rep calls every function once); milliseconds per call."""
    for fn in fns.values():
        for _ in range(warm):
            fn()
    times: dict = {k: [] for k in fns}
    for _ in range(reps):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t0) * 1000)
    return {k: {"median_ms": round(median(v), 4), "p90_ms": round(percentile(v, 90), 4),
                "min_ms": round(min(v), 4), "max_ms": round(max(v), 4), "calls": reps} for k, v in times.items()}


def children_cpu() -> float:
    """User + system CPU seconds of this process's terminated, waited-for children so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(cmd: list[str], env: dict | None = None, cwd: str | None = None,
              timeout: float = 300) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command; returns (wall seconds, CompletedProcess). ``proc.cpu_seconds`` = its user+sys CPU."""
    cpu0, started = children_cpu(), time.perf_counter()
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


def _tree(pid: int) -> list:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def process_tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (server master + workers)."""
    import psutil

    total = 0.0
    for proc in _tree(pid):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def process_tree_rss(pid: int) -> dict:
    """RSS (MB) of a process and all its descendants (server master + workers)."""
    import psutil

    per = {}
    for proc in _tree(pid):
        try:
            per[proc.pid] = round(proc.memory_info().rss / 1e6, 1)
        except psutil.NoSuchProcess:
            continue
    return {"total_mb": round(sum(per.values()), 1) if per else None, "processes": per}


# ------------------------------------------------------------------------------ HTTP


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


def post(port: int, body: bytes, headers: dict | None = None) -> tuple[int, dict, dict]:
    """One POST /invocations on a new connection: (status, JSON answer, response headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/invocations", body=body, headers=headers or JSON)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read()), dict(resp.getheaders())
    finally:
        conn.close()


def load(port: int, body: bytes, headers: dict, concurrency: int, max_requests: int, max_seconds: float,
         check: Callable[[int, bytes], bool] | None = None, warmup: int = 20, sample_every: float | None = None,
         sampler: Callable[[], dict] | None = None, keep_latencies: bool = False,
         stop: threading.Event | None = None, record: Callable | None = None) -> dict:
    """Closed-loop load on 127.0.0.1: ``concurrency`` threads, each with one keep-alive connection, until
    ``max_requests`` in total, ``max_seconds`` or ``stop``. Non-2xx, a failed ``check`` and exceptions are
    errors. ``record(sent, done, status, variant header, body)`` sees every request (status 0: no answer)."""
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    errors: list[str] = []
    samples: list[dict] = []

    def connect() -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=70)
        conn.connect()
        return conn

    def one(conn: http.client.HTTPConnection) -> tuple[int, bytes]:
        sent = time.perf_counter()
        conn.request("POST", "/invocations", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if record:
            record(sent, time.perf_counter(), resp.status, resp.getheader(VARIANT, ""), data)
        if resp.getheader("Connection", "").lower() == "close":
            conn.close()
        return resp.status, data

    conn = connect()  # warm-up on one connection (first requests load lazily imported code paths)
    for _ in range(warmup):
        status, data = one(conn)
        if status >= 400:
            raise RuntimeError(f"warm-up request failed: HTTP {status}: {data[:300]!r}")
    conn.close()

    def worker() -> None:
        nonlocal issued
        conn, local = connect(), []
        try:
            while True:
                with lock:
                    if issued >= max_requests or time.perf_counter() >= stop_at or stop and stop.is_set():
                        break
                    issued += 1
                t0 = time.perf_counter()
                try:
                    status, data = one(conn)
                    if not (200 <= status < 300 and (check is None or check(status, data))):
                        with lock:
                            errors.append(f"HTTP {status}: {data[:200]!r}")
                except Exception as exc:  # connection reset, timeout...
                    if record:
                        record(t0, time.perf_counter(), 0, "", f"{type(exc).__name__}: {exc}".encode())
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
    stop_at = started + max_seconds
    for t in threads:
        t.start()
    next_sample = started
    while sampler is not None and any(t.is_alive() for t in threads):
        if (now := time.perf_counter()) >= next_sample:
            samples.append({"t": round(now - started, 2), **sampler()})
            next_sample = now + sample_every
        time.sleep(0.2)
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, "requests_ok": len(latencies), "errors": len(errors),
            "error_examples": errors[:5], "seconds": round(elapsed, 3),
            "throughput_rps": round(len(latencies) / elapsed, 1) if elapsed else None, **latency_stats(latencies),
            "loadavg": loadavg(), **({"samples": samples} if samples else {}),
            **({"latencies_ms": latencies} if keep_latencies else {})}


def load_rounds(targets: dict, concurrency: int, rounds: int, max_requests: int, max_seconds: float,
                warmup: int = 20, server_pids: dict | None = None,
                around: Callable[[str], Any] | None = None, settle: float = 0.0) -> dict:
    """Paired peer runs over HTTP: the targets (name -> (port, body, headers, check)) alternate round by
    round under the same load. Per target: merged latencies, throughput over all rounds, each round's
    req/s, and, with ``server_pids``, the server's CPU ms per request (user + sys of its process tree,
    read around each of its rounds, ``settle`` s after the load): it depends much less on the machine's
    load than wall time. ``around(name)``: a context manager each round of that target runs inside."""
    merged = {k: {"lat": [], "seconds": 0.0, "errors": 0, "examples": [], "rps": [], "cpu": 0.0, "sent": 0}
              for k in targets}

    def one_round(name: str, r: int) -> None:
        port, body, headers, check = targets[name]
        pid, warm = (server_pids or {}).get(name), warmup if r == 0 else 2
        with around(name) if around else nullcontext():
            cpu0 = process_tree_cpu(pid) if pid else 0.0
            res = load(port, body, headers, concurrency, max(1, max_requests // rounds), max_seconds / rounds,
                       check=check, warmup=warm, keep_latencies=True)
            time.sleep(settle)
            cpu = process_tree_cpu(pid) - cpu0 if pid else 0.0
        m = merged[name]
        m["lat"] += res["latencies_ms"]
        m["seconds"] += res["seconds"]
        m["errors"] += res["errors"]
        m["examples"] += res["error_examples"]
        m["rps"].append(res["throughput_rps"])
        m["cpu"] += cpu
        m["sent"] += res["requests_ok"] + res["errors"] + warm

    interleave({name: (lambda r, name=name: one_round(name, r)) for name in targets}, rounds)
    out = {}
    for name, m in merged.items():
        out[name] = {"concurrency": concurrency, "rounds": rounds, "requests_ok": len(m["lat"]),
                     "errors": m["errors"], "error_examples": m["examples"][:5], "requests_sent": m["sent"],
                     "seconds": round(m["seconds"], 3), "rounds_rps": m["rps"],
                     "throughput_rps": round(len(m["lat"]) / m["seconds"], 1) if m["seconds"] else None,
                     **latency_stats(m["lat"]), "loadavg": loadavg()}
        if (server_pids or {}).get(name):
            out[name]["server_cpu_ms_per_request"] = round(1000 * m["cpu"] / max(1, m["sent"]), 4)
    return out


def round_ratios(a: dict, b: dict, digits: int = 2) -> list:
    """Per-round throughput ratios of two load_rounds results."""
    return [ratio(x, y, digits) for x, y in zip(a["rounds_rps"], b["rounds_rps"], strict=True)]


ROUNDS_HEADERS = ["case", "side", "req/s", "÷ peer", "÷ peer per round", "p50 ms", "p99 ms", "server CPU ms/req",
                  "errors", "load 1-min"]


def rounds_rows(case: str, got: dict, peer: str) -> list[list]:
    """Rows (ROUNDS_HEADERS) of a load_rounds result, one per side, each against ``peer`` from the same rounds."""
    return [[case, side, r["throughput_rps"], ratio(r["throughput_rps"], got[peer]["throughput_rps"], 2),
             ", ".join(str(x) for x in round_ratios(r, got[peer])), r["p50_ms"], r["p99_ms"],
             r.get("server_cpu_ms_per_request"), r["errors"], r["loadavg"][0]] for side, r in got.items()]


# ------------------------------------------------------------------------------ the platform's models


def reference_data() -> tuple[str, bytes]:
    """The reference telecom CSV (read from ../shared/data, never copied), or the synthetic sample."""
    if REFERENCE_CSV.exists():
        return "reference", REFERENCE_CSV.read_bytes()
    from churn_core.data.sample import make_sample

    print(f"reference CSV missing at {REFERENCE_CSV}; using the synthetic sample")
    return "sample", make_sample()


def train(p, dataset: str, hyperparameters: dict, name: str, timeout: float = 900) -> str:
    """A training job to Completed (polled every 0.1 s); raises if it ends otherwise."""
    p.start_training(dataset, hyperparameters, name=name)
    deadline = time.monotonic() + timeout
    while (job := p.describe_training(name)).status in ("InProgress", "Stopping"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"training {name} did not finish in {timeout:.0f} s")
        time.sleep(0.1)
    if job.status != "Completed":
        raise RuntimeError(f"training {name} ended {job.status}: {job.failure_reason}")
    return name


def deploy(p, model: str, name: str, workers: int = 1):
    ep = p.deploy(model, name, "ml.m5.large", workers, wait=True, timeout=180)
    if ep.status != "InService":
        raise RuntimeError(f"{name} is {ep.status}: {ep.failure_reason}")
    return ep


def port_of(ep) -> int:
    return int(ep.url.rsplit(":", 1)[1])


def extract_model(p, model: str, folder: Path) -> Path:
    """The job's model.tar.gz read once, checked against the SHA-256 recorded at training (joblib is
    pickle: never load an unverified file), and those bytes extracted into ``folder``."""
    from churn_core.backends.local.endpoint.server import safe_extract
    from churn_core.storage.unpack import read_verified

    row = p.get_model(model)
    if not folder.exists():
        safe_extract(read_verified(p.store.path(row["artifact_key"]), row["artifact_sha256"]), folder)
    return folder


def load_in_process(p, model: str, folder: Path):
    """(entry module, loaded model) of a trained model, in this process, as the server loads it."""
    from churn_core.backends.local.endpoint.server import load_entry

    module = load_entry(ENTRY)
    return module, module.model_fn(str(extract_model(p, model, folder)))


def sm_env(base: Path) -> dict:
    """The SageMaker training environment the job driver gives entry/train.py, for a bare run in ``base``."""
    return dict(os.environ, SM_MODEL_DIR=str(base / "model"), SM_OUTPUT_DATA_DIR=str(base / "output" / "data"),
                SM_OUTPUT_FAILURE=str(base / "output" / "failure"),
                SM_CHANNEL_TRAIN=str(base / "input" / "data" / "train"),
                SM_CHANNEL_TEST=str(base / "input" / "data" / "test"), SM_CHANNELS=json.dumps(["test", "train"]),
                SM_CURRENT_HOST="algo-1", SM_HOSTS=json.dumps(["algo-1"]), SM_NUM_CPUS=str(os.cpu_count() or 1),
                PYTHONUNBUFFERED="1")


def prepare_channels(p, dataset, base: Path) -> None:
    """Every object of the train and test prefixes (the data and the typed schema decided at upload), as
    the job driver copies them, so a bare train.py trains on exactly the same channels."""
    for channel, prefix in (("train", dataset.train_prefix), ("test", dataset.test_prefix)):
        folder = base / "input" / "data" / channel
        folder.mkdir(parents=True, exist_ok=True)
        for key in p.store.list(prefix):
            p.store.download(key, folder / key[len(prefix):])


def clear_outputs(base: Path) -> None:
    """Empty model/ and output/data/ before a bare train.py run."""
    for sub in ("model", "output"):
        shutil.rmtree(base / sub, ignore_errors=True)
    (base / "model").mkdir(parents=True)
    (base / "output" / "data").mkdir(parents=True)


# ------------------------------------------------------------------------------ MLflow, the serving peer


def mlflow_ready(opts) -> bool:
    """Whether bench/.mlflow-venv is there (docs/benchmarks.md says how to create it) and not skipped."""
    ready = (MLFLOW_VENV / "bin" / "mlflow").exists()
    if not ready and not opts.skip_mlflow:
        print(f"{MLFLOW_VENV} is missing: create it as docs/benchmarks.md says; skipping the MLflow peers")
    return ready and not opts.skip_mlflow


def mlflow_env(work: Path) -> dict:
    env = dict(os.environ, PATH=f"{MLFLOW_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               MLFLOW_TRACKING_URI=(work / "mlruns").as_uri())
    env.pop("PYTHONPATH", None)
    return env


def export_mlflow(model_dir: Path, target: Path, predict_fn: str | None = None) -> Path:
    """Save the extracted (verified) pipeline as an MLflow model with bench/mlflow_export.py in MLflow's venv."""
    out = subprocess.run([str(MLFLOW_VENV / "bin" / "python"), str(BENCH / "mlflow_export.py"), str(model_dir),
                          str(target), *([predict_fn] if predict_fn else [])], capture_output=True, text=True,
                         timeout=900, cwd=str(target.parent))
    if out.returncode != 0:
        raise RuntimeError(f"MLflow export failed: {out.stderr[-1500:]}")
    print(f"  MLflow model: {out.stdout.strip().splitlines()[-1]}")
    return target
