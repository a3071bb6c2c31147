"""Code execution through the unmodified e2b-code-interpreter SDK (sync)."""

import time

import pytest
from e2b import NotFoundException, TimeoutException
from e2b_code_interpreter import Sandbox

from helpers import strip_ansi


@pytest.fixture
def sbx(tracker):
    return tracker.add(Sandbox.create())


def test_state_across_calls(sbx):
    a = sbx.run_code("x = 1")
    assert a.error is None
    assert a.results == []
    b = sbx.run_code("x + 1")
    assert b.error is None
    assert b.text == "2"
    assert len(b.results) == 1 and b.results[0].is_main_result
    assert b.execution_count > a.execution_count, (a.execution_count, b.execution_count)
    # language="python" is the default python context, the one used above.
    assert sbx.run_code("x + 2", language="python").text == "3"


def test_logs(sbx):
    ex = sbx.run_code('import sys\nprint("hello")\nprint("oops", file=sys.stderr)\nprint("world")')
    assert ex.error is None
    assert "".join(ex.logs.stdout) == "hello\nworld\n"
    assert "".join(ex.logs.stderr) == "oops\n"
    assert ex.text is None
    assert ex.results == []


def test_contexts(sbx):
    ctx = sbx.create_code_context()
    assert ctx.id
    assert ctx.language == "python"
    assert isinstance(ctx.cwd, str)
    assert any(c.id == ctx.id for c in sbx.list_code_contexts()), "list_code_contexts lacks the new context"

    sbx.run_code('z = "default"')
    sbx.run_code('z = "ctx"', context=ctx)
    assert sbx.run_code("z", context=ctx).text == "ctx"
    assert sbx.run_code("z").text == "default"

    sbx.restart_code_context(ctx)
    after = sbx.run_code("z", context=ctx)
    assert after.error is not None and after.error.name == "NameError", after
    assert sbx.run_code("z").text == "default", "restarting one context touched the default one"

    sbx.remove_code_context(ctx)
    assert not any(c.id == ctx.id for c in sbx.list_code_contexts()), "removed context is still listed"
    with pytest.raises(NotFoundException):
        sbx.run_code("1", context=ctx)


def test_error_with_traceback(sbx):
    seen = []
    ex = sbx.run_code("def f():\n    return 1/0\nf()", on_error=seen.append)
    assert ex.error is not None
    assert ex.error.name == "ZeroDivisionError"
    assert "division by zero" in ex.error.value
    assert isinstance(ex.error.traceback, str) and ex.error.traceback
    assert "ZeroDivisionError" in strip_ansi(ex.error.traceback)
    assert len(seen) == 1
    assert ex.results == []
    assert sbx.run_code("1 + 1").text == "2"


def test_on_stdout_streams_before_the_end(sbx):
    seen = []
    ex = sbx.run_code(
        'import time\nprint("first")\ntime.sleep(1)\nprint("second")',
        on_stdout=lambda m: seen.append((m.line, m.timestamp, time.monotonic())),
    )
    done = time.monotonic()
    assert "".join(s[0] for s in seen) == "first\nsecond\n"
    assert "".join(ex.logs.stdout) == "first\nsecond\n"
    assert all(s[1] for s in seen), "stdout lines need a timestamp"
    first = next(s for s in seen if "first" in s[0])
    second = next(s for s in seen if "second" in s[0])
    # The code sleeps 1 s between the prints: streamed output arrives about a
    # second apart, buffered output arrives together at the end.
    assert second[2] - first[2] >= 0.3 and done - first[2] >= 0.3, (
        f"first stdout arrived only {second[2] - first[2]:.3f}s before the second and "
        f"{done - first[2]:.3f}s before the end: output is not streamed"
    )


def test_on_result(sbx):
    results = []
    ex = sbx.run_code("6 * 7", on_result=results.append)
    assert len(results) == 1
    assert results[0].text == "42"
    assert results[0].is_main_result
    assert ex.text == "42"


def test_envs_per_execution(sbx):
    value = "it's \"quoted\" \\ $HOME `x` ünï"
    code = 'import os\nprint(os.environ.get("E2E_PY_ENV", "<unset>"))'
    a = sbx.run_code(code, envs={"E2E_PY_ENV": value})
    assert a.error is None, a.error
    assert "".join(a.logs.stdout) == value + "\n"
    b = sbx.run_code(code)
    assert "".join(b.logs.stdout) == "<unset>\n", "envs leaked into the next execution"


def test_timeout_interrupts_and_sandbox_stays_usable(sbx):
    sbx.run_code("before = 41")
    with pytest.raises(TimeoutException):
        sbx.run_code("while True:\n    pass", timeout=2)
    # If the server did not interrupt the busy loop this would queue behind it.
    try:
        nxt = sbx.run_code("before + 1", timeout=15)
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"the execution after an aborted busy loop failed (was the loop interrupted?): {e!r}")
    assert nxt.error is None, nxt.error
    assert nxt.text == "42"
