"""Polling for a condition, shared by the benchmarks that drive real processes and the tests."""
from __future__ import annotations

import time


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """`predicate()`'s first truthy result within `timeout` s (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception:
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
