"""The AsyncSandbox paths of the unmodified SDKs (asyncio.run, no plugin needed)."""

import asyncio
import time

import pytest
from e2b import NotFoundException, SandboxNotFoundException, SandboxQuery, TimeoutException
from e2b_code_interpreter import AsyncSandbox

from helpers import ID_RE, run_async, unique_tag


def test_async_lifecycle_and_code(tracker):
    async def main():
        tag = unique_tag("py-async")
        sbx = tracker.add(await AsyncSandbox.create(metadata={"tag": tag}))
        assert ID_RE.match(sbx.sandbox_id), sbx.sandbox_id
        assert await sbx.is_running() is True

        info = await AsyncSandbox.get_info(sbx.sandbox_id)
        assert info.metadata == {"tag": tag}
        listed = await AsyncSandbox.list(query=SandboxQuery(metadata={"tag": tag})).next_items()
        assert [s.sandbox_id for s in listed] == [sbx.sandbox_id]

        await sbx.run_code("x = 20")
        assert (await sbx.run_code("x * 2 + 2")).text == "42"

        seen = []

        async def on_stdout(m):
            seen.append((m.line, time.monotonic()))

        ex = await sbx.run_code('import time\nprint("first")\ntime.sleep(1)\nprint("second")', on_stdout=on_stdout)
        done = time.monotonic()
        assert "".join(s[0] for s in seen) == "first\nsecond\n"
        assert "".join(ex.logs.stdout) == "first\nsecond\n"
        first = next(s for s in seen if "first" in s[0])
        assert done - first[1] >= 0.3, f"first stdout only {done - first[1]:.3f}s before the end: not streamed"

        ctx = await sbx.create_code_context()
        await sbx.run_code("y = 'ctx'", context=ctx)
        assert (await sbx.run_code("y", context=ctx)).text == "ctx"
        assert (await sbx.run_code("y")).error.name == "NameError"
        assert any(c.id == ctx.id for c in await sbx.list_code_contexts())
        await sbx.remove_code_context(ctx)
        with pytest.raises(NotFoundException):
            await sbx.run_code("1", context=ctx)

        assert await AsyncSandbox.kill(sbx.sandbox_id) is True
        assert await AsyncSandbox.kill(sbx.sandbox_id) is False
        assert await sbx.is_running() is False
        with pytest.raises(SandboxNotFoundException):
            await AsyncSandbox.get_info(sbx.sandbox_id)

    run_async(main())


def test_async_concurrent_sandboxes(tracker):
    async def one(i):
        sbx = tracker.add(await AsyncSandbox.create())
        ex = await sbx.run_code(f"import time\ntime.sleep(0.5)\nprint({i})\n{i} * 10")
        return ex

    async def main():
        execs = await asyncio.gather(*(one(i) for i in range(3)))
        for i, ex in enumerate(execs):
            assert ex.error is None, ex.error
            assert "".join(ex.logs.stdout) == f"{i}\n"
            assert ex.text == str(i * 10)

    run_async(main())


def test_async_timeout_interrupts(tracker):
    async def main():
        sbx = tracker.add(await AsyncSandbox.create())
        await sbx.run_code("before = 41")
        with pytest.raises(TimeoutException):
            await sbx.run_code("while True:\n    pass", timeout=2)
        try:
            nxt = await sbx.run_code("before + 1", timeout=15)
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"the execution after an aborted busy loop failed (was the loop interrupted?): {e!r}")
        assert nxt.text == "42"

    run_async(main())
