"""envd's surface (processes, files, watchers, PTY) through the unmodified e2b SDK (sync)."""

import hashlib
import os
import re

import pytest
from e2b import (
    CommandExitException,
    FileNotFoundException,
    FilesystemEventType,
    FileType,
    InvalidArgumentException,
    PtySize,
    Sandbox,
)

from helpers import strip_ansi, wait_for

PRIVATE_MODE_RE = re.compile(r"\x1b\[\?[0-9;]*[A-Za-z]")


def plain_terminal(b: bytes) -> str:
    """Terminal output without escape sequences (private modes too) and carriage returns."""
    return strip_ansi(PRIVATE_MODE_RE.sub("", b.decode(errors="replace"))).replace("\r", "")


@pytest.fixture
def sbx(tracker):
    return tracker.add(Sandbox.create("base"))


def test_commands_run(sbx):
    r = sbx.commands.run("echo out; echo err >&2")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "out\n", "err\n")
    assert sbx.commands.run('echo "$FOO"', envs={"FOO": "bar baz"}).stdout == "bar baz\n"
    assert sbx.commands.run("echo $USER", user="root").stdout == "root\n"
    sbx.files.make_dir("/home/user/wd")
    pwd = sbx.commands.run("pwd", cwd="/home/user/wd").stdout.strip()
    assert pwd.endswith("/home/user/wd"), pwd

    with pytest.raises(CommandExitException) as exc:
        sbx.commands.run("echo partial; exit 4")
    assert exc.value.exit_code == 4
    assert exc.value.stdout == "partial\n"

    with pytest.raises(InvalidArgumentException):
        sbx.commands.run("true", cwd="/home/user/no/such/dir")


def test_background_with_stdin(sbx):
    seen = []
    handle = sbx.commands.run("cat", background=True, stdin=True)
    assert handle.pid > 0
    sbx.commands.send_stdin(handle.pid, "hello\n")
    sbx.commands.send_stdin(handle.pid, b"bytes\n")
    sbx.commands.close_stdin(handle.pid)
    result = handle.wait(on_stdout=seen.append)
    assert result.exit_code == 0
    assert result.stdout == "hello\nbytes\n"
    assert "".join(seen) == "hello\nbytes\n"

    sleeper = sbx.commands.run("sleep 60", background=True)
    assert any(p.pid == sleeper.pid for p in sbx.commands.list())
    assert sbx.commands.kill(sleeper.pid) is True
    with pytest.raises(CommandExitException):
        sleeper.wait()
    assert sbx.commands.kill(sleeper.pid) is False


def test_files(sbx):
    info = sbx.files.write("/home/user/py/a.txt", "hello from python")
    assert info.path == "/home/user/py/a.txt"
    assert sbx.files.read("/home/user/py/a.txt") == "hello from python"

    blob = os.urandom(1 << 20)
    sbx.files.write("/home/user/py/blob.bin", blob)
    assert bytes(sbx.files.read("/home/user/py/blob.bin", format="bytes")) == blob

    many = sbx.files.write_files(
        [
            {"path": "/home/user/py/m/1.txt", "data": "one"},
            {"path": "/home/user/py/m/2.txt", "data": b"two"},
        ]
    )
    assert sorted(w.path for w in many) == ["/home/user/py/m/1.txt", "/home/user/py/m/2.txt"]

    # A file-like object goes up as a streamed octet-stream body.
    with open(__file__, "rb") as f:
        sbx.files.write("/home/user/py/self.py", f)
    with open(__file__, "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    got = hashlib.sha256(bytes(sbx.files.read("/home/user/py/self.py", format="bytes"))).hexdigest()
    assert got == want

    top = sbx.files.list("/home/user/py")
    assert sorted(e.name for e in top) == ["a.txt", "blob.bin", "m", "self.py"]
    assert next(e for e in top if e.name == "m").type == FileType.DIR
    deep = sbx.files.list("/home/user/py", depth=2)
    assert "/home/user/py/m/2.txt" in [e.path for e in deep]

    assert sbx.files.exists("/home/user/py/a.txt") is True
    assert sbx.files.exists("/home/user/py/nope") is False
    assert sbx.files.get_info("/home/user/py/a.txt").size == len("hello from python")
    sbx.files.remove("/home/user/py/a.txt")
    assert sbx.files.exists("/home/user/py/a.txt") is False
    with pytest.raises(FileNotFoundException):
        sbx.files.read("/home/user/py/a.txt")


def test_watch_dir_polling(sbx):
    sbx.files.make_dir("/home/user/watched")
    watcher = sbx.files.watch_dir("/home/user/watched")
    try:
        # The command runs in the home directory, so the relative path lands in the watched one.
        sbx.commands.run("echo x > watched/new.txt")
        seen = []

        def created():
            seen.extend(watcher.get_new_events())
            return any(
                e.name == "new.txt" and e.type in (FilesystemEventType.CREATE, FilesystemEventType.WRITE) for e in seen
            )

        wait_for(created, what="a create event for new.txt")
    finally:
        watcher.stop()


def test_pty(sbx):
    term = sbx.pty.create(PtySize(rows=24, cols=80))
    try:
        sbx.pty.send_stdin(term.pid, b"echo hi\n")
        out = b""
        for _, _, pty in term:
            if pty:
                out += pty
            if "\nhi\n" in plain_terminal(out):
                break
        assert "\nhi\n" in plain_terminal(out), out
        sbx.pty.resize(term.pid, PtySize(rows=30, cols=100))
    finally:
        assert sbx.pty.kill(term.pid) is True
        term.disconnect()
