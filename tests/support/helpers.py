"""Test helpers shared by the service tests (polling with a deadline, never a fixed sleep)."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 60.0, interval: float = 0.05, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_job(p, name: str, timeout: float = 90.0):
    return wait_until(lambda: (j := p.describe_training(name)).status not in ("InProgress", "Stopping") and j,
                      timeout, what=f"job {name} to finish")
