import os

import pytest

from helpers import Tracker

REQUIRED = ("E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY")


def pytest_configure(config):
    missing = [k for k in REQUIRED if not os.environ.get(k)]
    if missing:
        raise pytest.UsageError(
            f"{', '.join(missing)} not set. These tests run against a live fleetbox: use "
            "`go test ./e2e/ -run TestPythonSDK` from loadtest/ (see loadtest/e2e/README.md)."
        )
    if os.environ.get("E2B_DEBUG"):
        raise pytest.UsageError("E2B_DEBUG must not be set: debug mode skips the API")


@pytest.fixture
def tracker():
    t = Tracker()
    yield t
    t.kill_all()
