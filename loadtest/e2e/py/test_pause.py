"""Pause, resume (connect) and snapshots through the unmodified e2b / e2b-code-interpreter SDKs (sync).

Sandboxes pause in place: files, processes and the code kernel's memory all survive a pause."""

import time
import uuid

import pytest
from e2b import (
    Sandbox as BaseSandbox,
    SandboxException,
    SandboxNotFoundException,
    SandboxQuery,
    SandboxState,
)
from e2b_code_interpreter import Sandbox as CodeSandbox

from helpers import unique_tag, wait_for

# The loop names its file relative to its working directory, the user's home: the process runtime of CI
# does not isolate the file system, so only the SDK's file API maps /home/user into the sandbox.
COUNTER = "/home/user/counter"
COUNTER_LOOP = "i=0; while true; do i=$((i+1)); echo $i > counter; sleep 0.2; done"


def read_counter(sbx) -> int:
    return int(sbx.files.read(COUNTER).strip())


@pytest.fixture
def snapshots():
    ids = []
    yield ids
    for sid in ids:
        try:
            BaseSandbox.delete_snapshot(sid)
        except Exception:  # noqa: BLE001
            pass


def listed(tag, *states):
    query = SandboxQuery(metadata={"tag": tag}, state=list(states) if states else None)
    return [(s.sandbox_id, s.state) for s in BaseSandbox.list(query=query).next_items()]


def test_pause_then_connect_keeps_kernel_files_and_processes(tracker):
    tag = unique_tag("py-pause")
    sbx = tracker.add(CodeSandbox.create(metadata={"tag": tag}))
    sbx.run_code("x = 41\ndata = list(range(1000))")
    sbx.files.write("/home/user/before.txt", "written before the pause")
    loop = sbx.commands.run(COUNTER_LOOP, background=True)
    wait_for(lambda: read_counter(sbx) >= 3, what="the counter loop to count")

    before = read_counter(sbx)
    assert sbx.pause() is True
    assert sbx.pause() is False, "a second pause answers 409: already paused"
    assert BaseSandbox.pause(sbx.sandbox_id) is False

    assert BaseSandbox.get_info(sbx.sandbox_id).state == SandboxState.PAUSED
    assert listed(tag, SandboxState.PAUSED) == [(sbx.sandbox_id, SandboxState.PAUSED)]
    assert listed(tag, SandboxState.RUNNING) == []
    assert listed(tag) == [(sbx.sandbox_id, SandboxState.PAUSED)]

    time.sleep(2)  # the loop would count about 10 in this time if it still ran
    resumed = CodeSandbox.connect(sbx.sandbox_id)
    assert resumed.sandbox_id == sbx.sandbox_id
    after = read_counter(resumed)
    assert after - before < 8, f"counter went from {before} to {after} while paused for 2 s"

    # Kernel memory survives: the sandbox was paused in place, not restarted.
    assert resumed.run_code("x + 1").text == "42"
    assert resumed.run_code("sum(data)").text == "499500"
    assert resumed.files.read("/home/user/before.txt") == "written before the pause"
    assert any(p.pid == loop.pid for p in resumed.commands.list()), f"pid {loop.pid} gone after resume"
    wait_for(lambda: read_counter(resumed) > after + 2, what="the loop to count again after resume")
    # The first handle works again too.
    assert sbx.run_code("x").text == "41"

    info = BaseSandbox.get_info(sbx.sandbox_id)
    assert info.state == SandboxState.RUNNING
    left = (info.end_at - info.started_at).total_seconds()
    assert left > 0, info

    # Connect to a running sandbox keeps it running; pause works again after a resume.
    BaseSandbox.connect(sbx.sandbox_id)
    assert sbx.beta_pause() is True
    again = CodeSandbox.connect(sbx.sandbox_id, timeout=60)
    assert again.run_code("x * 2").text == "82"


def test_on_timeout_pause_then_connect(tracker):
    sbx = tracker.add(CodeSandbox.create(timeout=5, lifecycle={"on_timeout": "pause"}))
    sbx.run_code("y = 7")
    wait_for(
        lambda: BaseSandbox.get_info(sbx.sandbox_id).state == SandboxState.PAUSED,
        timeout=30,
        what="the sandbox to be paused at its timeout",
    )
    resumed = CodeSandbox.connect(sbx.sandbox_id, timeout=60)
    assert resumed.run_code("y * 6").text == "42"
    assert BaseSandbox.get_info(sbx.sandbox_id).state == SandboxState.RUNNING


def test_auto_resume_on_traffic(tracker):
    sbx = tracker.add(CodeSandbox.create(timeout=5, lifecycle={"on_timeout": "pause", "auto_resume": True}))
    sbx.run_code("z = 5")
    wait_for(
        lambda: BaseSandbox.get_info(sbx.sandbox_id).state == SandboxState.PAUSED,
        timeout=30,
        what="the sandbox to be paused at its timeout",
    )
    # No connect: the next request wakes it.
    assert sbx.run_code("z * 2").text == "10"
    assert BaseSandbox.get_info(sbx.sandbox_id).state == SandboxState.RUNNING


def test_pause_of_unknown_sandbox():
    sbx = BaseSandbox.create("base")
    sbx.kill()
    with pytest.raises(SandboxNotFoundException):
        BaseSandbox.pause(sbx.sandbox_id)
    with pytest.raises(SandboxNotFoundException):
        BaseSandbox.connect(sbx.sandbox_id)


def test_snapshot_create_from_list_delete(tracker, snapshots):
    src = tracker.add(BaseSandbox.create("base", envs={"FROM_SOURCE": "yes"}))
    src.files.write("/home/user/snap.txt", "in the snapshot")

    snap = src.create_snapshot()
    snapshots.append(snap.snapshot_id)
    assert snap.names == [snap.snapshot_id]

    # The source keeps running, and changes after a snapshot are not in it.
    assert BaseSandbox.get_info(src.sandbox_id).state == SandboxState.RUNNING
    src.files.write("/home/user/snap.txt", "changed after the snapshot")

    name = f"py-snap-{uuid.uuid4().hex[:8]}"
    named = BaseSandbox.create_snapshot(src.sandbox_id, name=name)
    snapshots.append(named.snapshot_id)
    assert named.names == [name]
    with pytest.raises(SandboxException) as e:
        src.create_snapshot(name=name)
    assert "409" in str(e.value), e.value

    child = tracker.add(BaseSandbox.create(snap.snapshot_id, envs={"FROM_CHILD": "yes"}))
    assert child.files.read("/home/user/snap.txt") == "in the snapshot"
    assert child.commands.run('echo "$FROM_SOURCE $FROM_CHILD"').stdout == "yes yes\n"
    assert child.get_info().template_id == snap.snapshot_id

    # A code-interpreter sandbox from a named snapshot; the source may be gone by then.
    src.kill()
    code = tracker.add(CodeSandbox.create(name))
    assert code.files.read("/home/user/snap.txt") == "changed after the snapshot"
    assert code.run_code("open('snap.txt').read()").text == "changed after the snapshot"

    ids = sorted(s.snapshot_id for s in BaseSandbox.list_snapshots(sandbox_id=src.sandbox_id).next_items())
    assert ids == sorted([snap.snapshot_id, named.snapshot_id])
    assert [s.snapshot_id for s in BaseSandbox.list_snapshots(name=name).next_items()] == [named.snapshot_id]
    pager = BaseSandbox.list_snapshots(sandbox_id=src.sandbox_id, limit=1)
    seen = []
    while pager.has_next:
        seen += [s.snapshot_id for s in pager.next_items()]
    assert sorted(seen) == ids

    assert BaseSandbox.delete_snapshot(snap.snapshot_id) is True
    assert BaseSandbox.delete_snapshot(snap.snapshot_id) is False
    assert BaseSandbox.delete_snapshot(name) is True
    assert BaseSandbox.list_snapshots(sandbox_id=src.sandbox_id).next_items() == []
    with pytest.raises(Exception):
        BaseSandbox.create(snap.snapshot_id)
    assert child.files.read("/home/user/snap.txt") == "in the snapshot"


def test_fork(tracker):
    sbx = tracker.add(BaseSandbox.create())
    sbx.files.write("/home/user/forked.txt", "from the source")
    forks = sbx.fork(count=2)
    assert len(forks) == 2
    for f in forks:
        assert isinstance(f, BaseSandbox), f
        tracker.add(f)
        assert f.sandbox_id != sbx.sandbox_id
        assert f.files.read("/home/user/forked.txt") == "from the source"
    assert sbx.files.read("/home/user/forked.txt") == "from the source"
