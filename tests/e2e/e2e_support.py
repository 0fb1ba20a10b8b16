"""Browser-test machinery: the dashboard as a server process, named steps with screenshots, page helpers.

Imported by ``conftest.py`` (fixtures) and the tests. Playwright is imported lazily so that a machine
without it gets skipped tests, not a collection error.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import requests

ROOT = Path(__file__).resolve().parents[2]

REFERENCE_CSV = ROOT.parent / "shared" / "data" / "telecom_churn.csv"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 2000}
PYTHON = ROOT / ".venv" / "bin" / "python"

# Generous: the machine is shared with other test runs, so CPU may be busy.
SERVER_START_TIMEOUT = 60.0
UI_TIMEOUT_MS = 45_000  # also covers the first st.dataframe/plotly chart of a page (lazily loaded JS)
JOB_TIMEOUT_MS = 90_000
NO_ENDPOINTS = "No endpoints. Deploy a model above."
DEPLOY_TIMEOUT_MS = 90_000


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """``streamlit run app/main.py`` in its own process group, on one port and one state directory."""

    def __init__(self, home: Path, log_dir: Path, port: int | None = None, args: tuple = ()):
        self.home = home
        self.args = args  # more streamlit options (e.g. --secrets.files for the sign-in test)
        self.log_dir = log_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict:
        env = dict(os.environ)
        for key in ("CHURN_S3_BUCKET", "AWS_ENDPOINT_URL", "CHURN_S3_PREFIX"):
            env.pop(key, None)
        env.update(CHURN_HOME=str(self.home), CHURN_BACKEND="local", PYTHONUNBUFFERED="1")
        return env

    def start(self) -> "AppServer":
        self.starts += 1
        log = open(self.log_dir / f"streamlit-{self.starts}.log", "wb")
        python = str(PYTHON if PYTHON.exists() else Path(sys.executable))
        self.proc = subprocess.Popen(
            [python, "-m", "streamlit", "run", "app/main.py", "--server.address", "127.0.0.1",
             "--server.port", str(self.port), "--server.headless", "true", *self.args],
            cwd=str(ROOT), env=self.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._wait_healthy()
        return self

    def log_tail(self, chars: int = 3000) -> str:
        path = self.log_dir / f"streamlit-{self.starts}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode} before it was healthy:\n"
                                   f"{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/_stcore/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"streamlit not healthy on {self.url} after {SERVER_START_TIMEOUT}s:\n{self.log_tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the server's own process group (never anything else), then reap it."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=15)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        self.proc = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def _sweep_processes(home: Path) -> list[int]:
    """Kill the process group of anything still running with this test's state dir on its command line."""
    import psutil

    own_group = os.getpgid(0)
    killed = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if str(home) not in " ".join(proc.info["cmdline"] or []):
                continue
            group = os.getpgid(proc.pid)
            if group == own_group:
                continue
            os.killpg(group, signal.SIGKILL)
            killed.append(proc.pid)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return killed


def cleanup_state(home: Path) -> None:
    """Endpoints deleted and jobs stopped through the platform itself, then a sweep for leftovers."""
    if (home / "churn.db").exists():
        try:
            import churn_core
            from churn_core.config import Settings

            env = dict(os.environ, CHURN_HOME=str(home), CHURN_BACKEND="local")
            platform = churn_core.connect(Settings.from_env(env))
            platform.cleanup()
            for job in platform.list_training_jobs(limit=1000):
                if job.is_active:
                    with contextlib.suppress(Exception):
                        platform.stop_training(job.name)
        except Exception as exc:  # teardown must go on to the sweep
            print(f"e2e teardown: platform cleanup failed: {exc!r}")
    _sweep_processes(home)


class Steps:
    """``with steps("deploy"):`` — a screenshot per step; a failure names its step and leaves FAILED-<step>.png."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.pages: dict = {}  # label -> Page; several labels = one screenshot per tab
        self.count = 0
        self.timings: list[tuple[str, float]] = []
        self.console: list[str] = []  # browser-side errors, reported with a failure

    def watch(self, label: str, page) -> None:
        """Screenshot this page at every step and keep its console errors and uncaught exceptions."""
        self.pages[label] = page
        page.on("console", lambda msg: msg.type == "error" and self.console.append(f"[{label}] console: {msg.text}"))
        page.on("pageerror", lambda err: self.console.append(f"[{label}] page error: {err}"))

    def _shoot(self, prefix: str, name: str) -> None:
        for label, page in self.pages.items():
            suffix = f"-{label}" if len(self.pages) > 1 else ""
            with contextlib.suppress(Exception):
                page.screenshot(path=str(self.folder / f"{prefix}{name}{suffix}.png"), full_page=True,
                                timeout=15_000)

    @contextlib.contextmanager
    def __call__(self, name: str):
        self.count += 1
        started = time.monotonic()
        try:
            yield
            for page in self.pages.values():
                no_app_exception(page)
        except Exception as exc:
            self._shoot("FAILED-", name)
            browser_errors = "\n".join(self.browser_errors()) or "(none)"
            raise AssertionError(f"step {name} failed: {type(exc).__name__}: {exc}\n"
                                 f"browser errors: {browser_errors}") from exc
        finally:
            self.timings.append((name, time.monotonic() - started))
        self._shoot(f"{self.count:02d}-", name)

    def browser_errors(self) -> list[str]:
        """Uncaught page errors first (a crashed React tree says why here), then the latest console errors."""
        crashes = [e for e in self.console if " page error: " in e][:5]
        return crashes + [e for e in self.console[-8:] if e not in crashes]

    def report(self) -> str:
        return " · ".join(f"{name} {seconds:.1f}s" for name, seconds in self.timings)


def reference_or_sample(folder: Path) -> Path:
    """The reference CSV where it lives (never copied), or the synthetic sample written to ``folder``."""
    if REFERENCE_CSV.exists():
        return REFERENCE_CSV
    from churn_core.data.sample import make_sample

    path = folder / "telecom_churn_sample.csv"
    path.write_bytes(make_sample())
    return path


def write_customers_csv(source: Path, target: Path, rows: int = 300) -> tuple[int, int]:
    """Customers without the Churn column plus an ID column, and one unscorable row at the end.

    Returns (number of good rows, file line of the bad row)."""
    frame = pd.read_csv(source).drop(columns=["Churn"]).head(rows)
    frame.insert(0, "customer_id", [f"C{i:05d}" for i in range(len(frame))])
    bad = frame.iloc[[0]].copy()
    bad["customer_id"] = "BAD-ROW"
    bad["AccountWeeks"] = "abc"
    pd.concat([frame.astype(object), bad.astype(object)]).to_csv(target, index=False)
    return len(frame), len(frame) + 2  # line 1 is the header


def main(page):
    """The main area: keeps clicks away from the sidebar and the toolbar (which has its own Deploy)."""
    return page.get_by_test_id("stMain")


def go(page, title: str) -> None:
    """Navigate with the sidebar (same browser session, so session state survives) and wait for the page title."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    expect_title(page, title)


def expect_title(page, title: str, timeout: int = UI_TIMEOUT_MS) -> None:
    from playwright.sync_api import expect

    expect(main(page).get_by_role("heading", level=1, name=title)).to_be_visible(timeout=timeout)


def button(page, name: str):
    return main(page).get_by_role("button", name=name, exact=True)


def click_while(locator, wanted, seconds: float = 60.0) -> bool:
    """Click ``locator`` as long as ``wanted()`` holds (e.g. a job is still running): a live fragment may
    redraw the element or the thing it acts on may end meanwhile; True once clicked, False if not wanted."""
    deadline = time.monotonic() + seconds
    while wanted():
        try:
            locator.click(timeout=5_000)
            return True
        except Exception:
            if time.monotonic() > deadline:
                raise
    return False


def open_expander(page, title: str, inside) -> None:
    """Make ``inside`` (a locator in the st.expander titled ``title``) visible: open the expander if it is
    folded, again if a rerun folded it meanwhile (its ``expanded`` default may change with the data)."""
    from playwright.sync_api import expect

    details = main(page).get_by_test_id("stExpander").filter(has_text=title).locator("details")
    for _ in range(5):
        expect(details).to_be_visible()
        if details.get_attribute("open") is None:
            details.locator("summary").click()
        try:
            expect(inside).to_be_visible(timeout=3_000)
            return
        except AssertionError:
            continue
    expect(inside).to_be_visible()


def choose_in_expander(page, title: str, label: str, option: str, attempts: int = 4) -> None:
    """``choose`` in a selectbox inside the st.expander ``title``, opening it first and again if a rerun
    remounts it folded while the choice is being made."""
    box = main(page).get_by_label(label, exact=True)
    for attempt in range(attempts):
        open_expander(page, title, box)
        try:
            choose(page, label, option, timeout=5_000)
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")  # a list left open makes the rest of the page inert


def choose(page, label: str, option: str, timeout: float | None = None) -> None:
    """Pick ``option`` in the st.selectbox labelled ``label``: type it into the searchable box (which
    narrows the list whatever was selected before) and click the one matching option."""
    from playwright.sync_api import expect

    box = main(page).get_by_label(label, exact=True)
    expect(box).to_be_visible()
    box.evaluate("el => el.scrollIntoView({block: 'center'})")  # room for its list below, on a long page
    box.click(timeout=timeout)
    box.fill(option)
    box.press("ArrowDown")  # opens the list if the click landed while the box was still settling
    wanted = page.get_by_role("option", name=option, exact=True)
    expect(wanted).to_be_visible()
    try:
        wanted.click(timeout=5_000)
    except Exception:  # the list popped up past the window's edge (a box low on a long page): use the keys
        options = page.get_by_role("option")
        assert options.count() == 1, f"{options.count()} options match {option!r}; cannot pick by keyboard"
        box.press("Enter")
    expect(box).to_have_value(option)


def grid_cell(page, text: "str | re.Pattern"):
    """A cell of an st.dataframe. The grid draws on a canvas; its accessible table (in the DOM but not
    "visible" to Playwright) mirrors the cells, so wait for it with ``to_be_attached``."""
    return main(page).get_by_test_id("stDataFrame").locator("[role=gridcell]").filter(has_text=text)


def expect_endpoints_removed(page, names: list[str]) -> None:
    """After a confirmed delete/clean-up: the page says what it removed and that no endpoints are left."""
    from playwright.sync_api import expect

    removed = main(page).get_by_test_id("stAlertContentSuccess").filter(has_text="Removed:")
    expect(removed).to_be_visible()
    for name in names:
        expect(removed).to_contain_text(f"endpoint {name}, config {name}-config")
    expect(main(page).get_by_text(NO_ENDPOINTS)).to_be_visible()
    page.wait_for_timeout(2_500)  # one refresh of the live table later, the confirmation is still there
    expect(removed).to_be_visible()


def no_app_exception(page) -> None:
    """A Streamlit traceback on screen is a failure, whatever the step was checking."""
    errors = main(page).get_by_test_id("stException")
    if errors.count():
        raise AssertionError(f"the page shows an exception: {errors.first.inner_text()[:800]}")


# --------------------------------------------------------------------------- shared user steps
# Each flow test strings these together; a flow only spells out what it is about.


def idle(page, timeout: int = UI_TIMEOUT_MS) -> None:
    """Wait until no script run is in flight (Streamlit's "Running…" status widget is gone)."""
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)


def upload(page, path: Path, attempts: int = 3) -> None:
    """Put a file into the page's (one visible) file uploader, and see it listed there.

    A file handed to the uploader while a rerun (from a choice just made) redraws the page can be dropped by
    Streamlit, as a user dropping it at that moment would see: wait for the page to be idle first, and hand it
    again if it is not listed."""
    from playwright.sync_api import expect

    shown = re.compile(re.escape(path.stem[:6]) + r".*" + re.escape(path.suffix) + "$")  # long names show "ab…yz"
    listed = main(page).get_by_test_id("stFileChipName").filter(has_text=shown)
    for attempt in range(attempts):
        idle(page)
        main(page).get_by_test_id("stFileUploaderDropzoneInput").set_input_files(path)
        try:
            expect(listed.first).to_be_visible(timeout=15_000)
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise


def store_dataset(page, path: Path) -> str:
    """On the Data page: upload ``path``, see it valid, store it under the name the page proposes."""
    from playwright.sync_api import expect

    m = main(page)
    upload(page, path)
    valid = m.get_by_test_id("stAlertContentSuccess").filter(has_text="is valid")
    expect(valid).to_contain_text(f"{path.name} is valid")
    name = m.get_by_label("Dataset name", exact=True).input_value()
    button(page, "Validate and store").click()
    expect(m.get_by_test_id("stAlertContentSuccess").filter(has_text=f"Stored {name}")).to_be_visible()
    return name


def launch_training(page, settings: dict[str, str], algorithm: str | None = None) -> str:
    """On the Train page: pick an algorithm, type settings (by their labels), launch; returns the job's name."""
    import re

    from playwright.sync_api import expect

    m = main(page)
    if algorithm:
        m.get_by_test_id("stRadio").get_by_text(algorithm, exact=True).click()
    for label, value in settings.items():
        m.get_by_label(label, exact=True).fill(value)
    launched = m.get_by_test_id("stAlertContentSuccess").filter(has_text=re.compile(r"Job \S+ has started"))
    before = launched.all_inner_texts()  # a previous launch's message may still be on screen
    button(page, "Launch training").click()
    if before:
        launched = launched.filter(has_not_text=before[0])
    expect(launched).to_be_visible()
    return re.search(r"Job (\S+) has started", launched.inner_text()).group(1)


def deploy_model(page, model: str) -> str:
    """On the Endpoints page: deploy ``model`` under the proposed endpoint name; returns that name."""
    from playwright.sync_api import expect

    m = main(page)
    choose(page, "Model (from a completed job)", model)
    # A new model makes a new name field; the previous one may linger hidden in the DOM for a moment.
    name_field = m.get_by_label("Endpoint name", exact=True).filter(visible=True)
    expect(name_field).to_have_value(f"{model}-endpoint")
    endpoint = name_field.input_value()
    button(page, "Deploy").click()
    expect(m.get_by_test_id("stAlertContentSuccess").filter(has_text=f"Endpoint {endpoint} is in service")) \
        .to_be_visible(timeout=DEPLOY_TIMEOUT_MS)
    return endpoint


def metric(page, label: str):
    """The value of the st.metric labelled ``label`` (absent when the metric is not shown)."""
    label_is = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    return main(page).get_by_test_id("stMetric").filter(has=label_is).get_by_test_id("stMetricValue")


@contextlib.contextmanager
def oidc_provider(*emails: str):
    """A real OpenID Connect provider (``oidc-provider-mock``) on a free 127.0.0.1 port, in a thread, with one
    predefined user per e-mail (its sign-in form offers a button for each); yields its base URL."""
    import threading

    import oidc_provider_mock
    import werkzeug.serving

    users = [oidc_provider_mock.User(sub=email, claims={"email": email, "email_verified": True}) for email in emails]
    server = werkzeug.serving.make_server("127.0.0.1", 0, oidc_provider_mock.app(user_claims=users), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def auth_secrets(folder: Path, app_port: int, issuer: str) -> Path:
    """A ``secrets.toml`` whose ``[auth]`` section signs the dashboard in through ``issuer`` (team mode)."""
    import secrets

    path = folder / "secrets.toml"
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(16)}"\n'
        'client_id = "churn-dashboard"\n'
        'client_secret = "churn-test-secret"\n'
        f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n', encoding="utf-8")
    path.chmod(0o600)
    return path
