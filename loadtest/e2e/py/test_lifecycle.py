"""Sandbox lifecycle through the unmodified e2b / e2b-code-interpreter SDKs (sync)."""

import concurrent.futures
from datetime import datetime, timezone

import pytest
from e2b import (
    AuthenticationException,
    Sandbox as BaseSandbox,
    SandboxException,
    SandboxNotFoundException,
    SandboxQuery,
    SandboxState,
)
from e2b_code_interpreter import Sandbox as CodeSandbox

from helpers import ID_RE, WRONG_API_KEY, unique_tag, wait_for


def test_create_base(tracker):
    sbx = tracker.add(BaseSandbox.create("base"))
    assert ID_RE.match(sbx.sandbox_id), sbx.sandbox_id
    assert sbx.is_running() is True


def test_create_code_interpreter_default_template(tracker):
    sbx = tracker.add(CodeSandbox.create())
    assert ID_RE.match(sbx.sandbox_id), sbx.sandbox_id
    info = sbx.get_info()
    assert "code-interpreter-v1" in (info.template_id, info.name), (info.template_id, info.name)
    assert sbx.run_code("1 + 1").text == "2"


def test_get_info(tracker):
    tag = unique_tag("py-info")
    before = datetime.now(timezone.utc)
    sbx = tracker.add(BaseSandbox.create("base", metadata={"tag": tag, "owner": "e2e-py"}, timeout=120))
    after = datetime.now(timezone.utc)
    for info in (sbx.get_info(), BaseSandbox.get_info(sbx.sandbox_id)):
        assert info.sandbox_id == sbx.sandbox_id
        assert info.metadata == {"tag": tag, "owner": "e2e-py"}
        assert "base" in (info.template_id, info.name), (info.template_id, info.name)
        assert info.state == SandboxState.RUNNING
        assert info.started_at.tzinfo is not None, "startedAt without a time zone"
        # Same machine, so the clocks agree; allow for whole-second timestamps.
        assert (before - info.started_at).total_seconds() <= 2, info.started_at
        assert (info.started_at - after).total_seconds() <= 2, info.started_at
        ttl = (info.end_at - info.started_at).total_seconds()
        assert 110 < ttl < 130, f"endAt - startedAt = {ttl}s, want about 120 (timeout)"


def test_list_metadata_filter_and_paging(tracker):
    tag = unique_tag("py-list")
    odd = "a&b=c d/é"  # exercises the nested metadata encoding

    def mk(grp):
        return BaseSandbox.create("base", metadata={"tag": tag, "grp": grp, "odd key": odd})

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        group = list(pool.map(mk, ["a", "a", "a"]))
    for s in group:
        tracker.add(s)
    tracker.add(mk("b"))

    paginator = BaseSandbox.list(query=SandboxQuery(metadata={"tag": tag, "grp": "a", "odd key": odd}), limit=2)
    assert paginator.has_next
    page1 = paginator.next_items()
    assert len(page1) == 2, [s.sandbox_id for s in page1]
    assert paginator.has_next, "no X-Next-Token after a full first page of 2 (3 match)"
    page2 = paginator.next_items()
    assert len(page2) == 1, [s.sandbox_id for s in page2]
    assert not paginator.has_next, "X-Next-Token on the last page"

    assert sorted(s.sandbox_id for s in page1 + page2) == sorted(s.sandbox_id for s in group)
    for s in page1 + page2:
        assert s.metadata == {"tag": tag, "grp": "a", "odd key": odd}
        assert s.state == SandboxState.RUNNING
        assert s.end_at > s.started_at

    running = BaseSandbox.list(query=SandboxQuery(metadata={"tag": tag}, state=[SandboxState.RUNNING])).next_items()
    assert len(running) == 4
    assert BaseSandbox.list(query=SandboxQuery(metadata={"tag": tag, "grp": "c"})).next_items() == []


def test_set_timeout_expires(tracker):
    tag = unique_tag("py-ttl")
    sbx = tracker.add(BaseSandbox.create("base", metadata={"tag": tag}))
    sbx.set_timeout(3)
    left = (sbx.get_info().end_at - datetime.now(timezone.utc)).total_seconds()
    assert -2 < left < 5, f"after set_timeout(3) endAt is {left}s away"

    def gone():
        try:
            BaseSandbox.get_info(sbx.sandbox_id)
            return False
        except SandboxNotFoundException:
            return True

    wait_for(gone, timeout=30, interval=0.25, what="get_info to raise SandboxNotFoundException after the timeout")
    assert sbx.is_running() is False
    assert BaseSandbox.list(query=SandboxQuery(metadata={"tag": tag})).next_items() == []
    assert BaseSandbox.kill(sbx.sandbox_id) is False


def test_kill_twice(tracker):
    sbx = tracker.add(BaseSandbox.create("base"))
    assert BaseSandbox.kill(sbx.sandbox_id) is True
    assert BaseSandbox.kill(sbx.sandbox_id) is False
    assert sbx.kill() is False
    with pytest.raises(SandboxNotFoundException):
        BaseSandbox.get_info(sbx.sandbox_id)
    assert sbx.is_running() is False


def test_wrong_api_key(tracker):
    with pytest.raises(AuthenticationException):
        tracker.add(BaseSandbox.create("base", api_key=WRONG_API_KEY))
    with pytest.raises(AuthenticationException):
        BaseSandbox.list(api_key=WRONG_API_KEY).next_items()
    with pytest.raises(AuthenticationException):
        BaseSandbox.kill("a" * 20, api_key=WRONG_API_KEY)
    with pytest.raises(AuthenticationException):
        BaseSandbox.get_info("a" * 20, api_key=WRONG_API_KEY)


def test_unknown_template(tracker):
    name = unique_tag("no-such-template")
    with pytest.raises(SandboxException) as ei:
        tracker.add(BaseSandbox.create(name))
    msg = str(ei.value)
    assert msg.startswith(("400: ", "404: ")), msg
    assert "template" in msg.lower(), msg


def test_connect_then_run_code(tracker):
    sbx = tracker.add(CodeSandbox.create())
    sbx.run_code("shared_value = 41")
    again = CodeSandbox.connect(sbx.sandbox_id)
    assert again.sandbox_id == sbx.sandbox_id
    assert again.run_code("shared_value + 1").text == "42"
    # The first handle keeps working (connect must not rotate its access token).
    assert sbx.run_code("shared_value").text == "41"
    assert again.is_running() is True

    BaseSandbox.kill(sbx.sandbox_id)
    with pytest.raises(SandboxNotFoundException):
        CodeSandbox.connect(sbx.sandbox_id)


def test_get_metrics(tracker):
    sbx = tracker.add(CodeSandbox.create())
    sbx.run_code("data = bytearray(32 << 20)")  # 32 MiB in the kernel
    sbx.files.write("/home/user/blob", "x" * (1 << 20))
    metrics = sbx.get_metrics()
    assert len(metrics) >= 1
    m = metrics[-1]
    assert m.cpu_count >= 1 and m.cpu_used_pct >= 0
    assert m.mem_used >= 32 << 20 and m.mem_total > m.mem_used
    assert m.disk_used >= 1 << 20 and m.disk_total > 0
    assert m.timestamp.tzinfo is not None


def test_network_policy_refused_by_the_process_runtime(tracker):
    with pytest.raises(SandboxException, match="jail runtime"):
        BaseSandbox.create(allow_internet_access=False)
    sbx = tracker.add(BaseSandbox.create())
    with pytest.raises(SandboxException, match="-runtime jail"):
        sbx.update_network({"deny_out": ["10.0.0.0/8"]})
