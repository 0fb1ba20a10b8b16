"""Being a forked child: take on the identity of the command it stands for, and leave cleanly.

Used by the warm process (for the job drivers, endpoint supervisors and model servers it forks)
and by the job driver (for the training script it forks), so both behave like a new interpreter.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Callable, NoReturn


def become(command: list[str], argv: list[str], env: dict, cwd: Path | str) -> None:
    """In a freshly forked child: take the default signal handlers, no stdin, and the working
    directory, environment, ``sys.argv`` and process title (``ps``, pid checks) of ``command``."""
    import tempfile

    from setproctitle import setproctitle

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.close(null_fd)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None  # recomputed from the new TMPDIR, not the parent's
    setproctitle(" ".join(command))
    sys.argv = list(argv)


def run_to_exit(work: Callable[[], object]) -> NoReturn:
    """Do a forked child's ``work``, then leave with ``os._exit`` and its status, as an interpreter
    would report it, so nothing of the parent (atexit hooks, the rest of its call stack) runs twice."""
    code = 70
    try:
        try:
            result = work()
            code = result if isinstance(result, int) else 0
        except SystemExit as exc:
            code = exit_status(exc)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        flush_output()
        os._exit(code & 0xFF)


def flush_output() -> None:
    """Flush stdout and stderr before a fork or ``os._exit``: no log line lost or written twice."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def exit_status(exc: SystemExit) -> int:
    """The status a process ending with ``exc`` reports, printing a text reason as the interpreter does."""
    if isinstance(exc.code, int):
        return exc.code
    if exc.code is None:
        return 0
    print(exc.code, file=sys.stderr)
    return 1
