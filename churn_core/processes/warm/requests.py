"""What the warm process's socket accepts, and how a start that got no answer avoids a duplicate.

**Only the product's own starts.** A request names one of ``MODULES`` with string arguments, an
absolute log path, a string environment and an existing working directory; a model server's
``--entry`` must be a script inside the project's ``entry/`` folder (any other file would be run
as the model's code). Everything else is refused before anything is forked.

**Each request carries an id, claimed once.** Before it forks, the warm process creates
``requests/<id>`` with ``O_EXCL`` (and later writes the child's pid into it). A caller that got no
answer in time (the warm process is stopped, hung, or a client is trickling bytes into it) tries to
create the same file itself: if it can, the warm process never took the request and never will
(it refuses an id that exists), so the caller may start the process plainly with no risk of two
drivers for one job; if it cannot, the warm process took it, and the caller waits for the child's
pid or reports exactly that.
"""

from __future__ import annotations

import argparse
import os
import re
import time
import uuid
from pathlib import Path

from churn_core.paths import ENTRY_DIR

MODULES = ("churn_core.backends.local.job_driver", "churn_core.backends.local.endpoint.supervisor",
           "churn_core.backends.local.endpoint.server",
           "churn_core.monitoring.monitor_driver", "churn_core.backends.local.tuning_driver",
           "churn_core.backends.local.transform_driver")
MAX_ARGS = 64
MAX_ARG_CHARS = 4096
MAX_REQUEST_BYTES = 1 << 20  # a request line (and an answer) is cut off beyond this
_ID_RE = re.compile(r"^[0-9a-f]{32}$")
WITHDRAWN = "withdrawn"


class Refused(ValueError):
    """A request the warm process will not run; the message says why."""


def new_id() -> str:
    return uuid.uuid4().hex


def entry_allowed(entry: str | Path) -> bool:
    """True for a file inside the project's ``entry/`` folder (links resolved), the only code a model runs."""
    try:
        path = Path(entry).resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return path.is_file() and path.is_relative_to(ENTRY_DIR.resolve())


def _entry_argument(args: list[str]) -> str | None:
    """The ``--entry`` value as the model server's own argparse would read it (abbreviations included)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=True, exit_on_error=False)
    parser.add_argument("--entry")
    try:
        known, _ = parser.parse_known_args(args)
    except (argparse.ArgumentError, SystemExit):
        raise Refused("the model server's --entry argument cannot be read") from None
    return known.entry


def check(request: object) -> dict:
    """The request if the socket may run it; Refused otherwise."""
    if not isinstance(request, dict):
        raise Refused("a request is a JSON object")
    request_id, module, args = request.get("id"), request.get("module"), request.get("args")
    if not isinstance(request_id, str) or not _ID_RE.fullmatch(request_id):
        raise Refused("a request must carry an id (32 hex digits)")
    if module not in MODULES:
        raise Refused(f"cannot start {module!r}")
    if not isinstance(args, list) or len(args) > MAX_ARGS or \
            not all(isinstance(a, str) and len(a) <= MAX_ARG_CHARS and "\0" not in a for a in args):
        raise Refused("arguments must be a short list of strings")
    log, cwd, env = request.get("log"), request.get("cwd"), request.get("env")
    if not isinstance(log, str) or not os.path.isabs(log) or "\0" in log:
        raise Refused("the log must be an absolute path")
    if not isinstance(cwd, str) or not os.path.isdir(cwd):
        raise Refused("the working directory must exist")
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise Refused("the environment must map strings to strings")
    if module == "churn_core.backends.local.endpoint.server":
        entry = _entry_argument(args)
        if entry is not None and not entry_allowed(entry if os.path.isabs(entry) else os.path.join(cwd, entry)):
            raise Refused(f"--entry {entry!r} is not a script of the project's entry/ folder ({ENTRY_DIR})")
    return request


def claim_file(folder: Path, request_id: str) -> Path:
    if not _ID_RE.fullmatch(request_id or ""):
        raise Refused("a request must carry an id (32 hex digits)")
    return Path(folder) / "requests" / request_id


def claim(folder: Path, request_id: str, content: str) -> bool:
    """Take ``request_id`` for good (True), or False when it was taken first."""
    try:
        fd = os.open(claim_file(folder, request_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
    return True


def record_pid(folder: Path, request_id: str, pid: int) -> None:
    """The warm process notes the child it forked for ``request_id`` (read by a caller that timed out)."""
    target = claim_file(folder, request_id)
    temp = target.with_name(f".{request_id}.tmp")
    temp.write_text(str(pid))
    temp.replace(target)


def claimed_pid(folder: Path, request_id: str, wait: float) -> int | None:
    """The child's pid recorded for a request the warm process took, waiting up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            text = claim_file(folder, request_id).read_text().strip()
            if text.isdigit():
                return int(text)
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def forget_old(folder: Path, older_than: float) -> None:
    now = time.time()
    try:
        entries = list((Path(folder) / "requests").iterdir())
    except OSError:
        return
    for path in entries:
        try:
            if now - path.lstat().st_mtime > older_than:
                path.unlink()
        except OSError:
            pass
