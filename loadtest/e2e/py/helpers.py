"""Shared helpers for the fleetbox Python end-to-end suites."""

import asyncio
import re
import time
import uuid

from e2b import Sandbox as BaseSandbox

ID_RE = re.compile(r"^[a-z0-9]{20}$")
WRONG_API_KEY = "e2b_" + "0" * 40
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def unique_tag(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


def strip_ansi(s: str) -> str:
    return ANSI_RE.sub("", s)


class Tracker:
    """Remembers sandbox ids; the `tracker` fixture kills them after the test."""

    def __init__(self):
        self.ids = []

    def add(self, sbx):
        self.ids.append(sbx if isinstance(sbx, str) else sbx.sandbox_id)
        return sbx

    def kill_all(self):
        for sid in self.ids:
            try:
                BaseSandbox.kill(sid)
            except Exception:
                pass
        self.ids.clear()


def wait_for(fn, timeout=30.0, interval=0.2, what="condition"):
    """Polls fn until it returns a truthy value; exceptions count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}" + (f"; last error: {last!r}" if last else "")
            )
        time.sleep(interval)


def run_async(coro, timeout=120.0):
    """Runs a coroutine with an overall deadline (no pytest-asyncio needed)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))
