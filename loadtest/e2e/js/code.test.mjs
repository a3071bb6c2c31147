// Code execution through the unmodified @e2b/code-interpreter SDK.
import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { Sandbox, NotFoundError, TimeoutError } from '@e2b/code-interpreter'
import { TEST_TIMEOUT, Tracker, stripAnsi, describe } from './helpers.mjs'

const tracker = new Tracker()
const newSandbox = async () => tracker.add(await Sandbox.create())
afterEach(() => tracker.killAll())

test('runCode keeps state across calls', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const a = await sbx.runCode('x = 1')
  assert.equal(a.error, undefined)
  assert.deepEqual(a.results, [])
  const b = await sbx.runCode('x + 1')
  assert.equal(b.error, undefined)
  assert.equal(b.text, '2')
  assert.equal(b.results.length, 1)
  assert.equal(b.results[0].isMainResult, true)
  assert.ok(b.executionCount > a.executionCount, `executionCount ${a.executionCount} then ${b.executionCount}`)
  // language: python uses the default python context, the one used above.
  assert.equal((await sbx.runCode('x + 2', { language: 'python' })).text, '3')
})

test('execution.logs: stdout and stderr', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const ex = await sbx.runCode('import sys\nprint("hello")\nprint("oops", file=sys.stderr)\nprint("world")')
  assert.equal(ex.error, undefined)
  assert.equal(ex.logs.stdout.join(''), 'hello\nworld\n')
  assert.equal(ex.logs.stderr.join(''), 'oops\n')
  assert.equal(ex.text, undefined)
  assert.deepEqual(ex.results, [])
})

test('contexts: create, list, isolate, restart, remove', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const ctx = await sbx.createCodeContext()
  assert.ok(typeof ctx.id === 'string' && ctx.id.length > 0, `context ${JSON.stringify(ctx)}`)
  assert.equal(ctx.language, 'python')
  assert.equal(typeof ctx.cwd, 'string')
  assert.ok((await sbx.listCodeContexts()).some((c) => c.id === ctx.id), 'listCodeContexts lacks the new context')

  await sbx.runCode('z = "default"')
  await sbx.runCode('z = "ctx"', { context: ctx })
  assert.equal((await sbx.runCode('z', { context: ctx })).text, 'ctx')
  assert.equal((await sbx.runCode('z')).text, 'default')

  await sbx.restartCodeContext(ctx)
  const afterRestart = await sbx.runCode('z', { context: ctx })
  assert.equal(afterRestart.error?.name, 'NameError', `after restart: ${JSON.stringify(afterRestart)}`)
  assert.equal((await sbx.runCode('z')).text, 'default', 'restarting one context touched the default one')

  await sbx.removeCodeContext(ctx)
  assert.ok(!(await sbx.listCodeContexts()).some((c) => c.id === ctx.id), 'removed context is still listed')
  await assert.rejects(sbx.runCode('1', { context: ctx }), (e) => {
    assert.ok(e instanceof NotFoundError, describe(e))
    return true
  })
})

test('errors: name, value, traceback; the sandbox stays usable', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const seen = []
  const ex = await sbx.runCode('def f():\n    return 1/0\nf()', { onError: (e) => seen.push(e) })
  assert.ok(ex.error, 'execution.error is not set')
  assert.equal(ex.error.name, 'ZeroDivisionError')
  assert.match(ex.error.value, /division by zero/)
  assert.ok(typeof ex.error.traceback === 'string' && ex.error.traceback.length > 0, 'empty traceback')
  assert.match(stripAnsi(ex.error.traceback), /ZeroDivisionError/)
  assert.equal(seen.length, 1)
  assert.deepEqual(ex.results, [])
  assert.equal((await sbx.runCode('1 + 1')).text, '2')
})

test('onStdout streams in order, before the execution finishes', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const seen = []
  const ex = await sbx.runCode('import time\nprint("first")\ntime.sleep(1)\nprint("second")', {
    onStdout: (m) => seen.push({ line: m.line, at: performance.now() }),
  })
  const done = performance.now()
  assert.equal(seen.map((s) => s.line).join(''), 'first\nsecond\n')
  assert.equal(ex.logs.stdout.join(''), 'first\nsecond\n')
  const first = seen.find((s) => s.line.includes('first'))
  const second = seen.find((s) => s.line.includes('second'))
  // The code sleeps 1 s between the prints: if output is streamed the first
  // callback runs about a second before the second one and before the end.
  assert.ok(
    second.at - first.at >= 300 && done - first.at >= 300,
    `first stdout arrived only ${Math.round(second.at - first.at)} ms before the second and ` +
      `${Math.round(done - first.at)} ms before the end: output is not streamed`,
  )
})

test('onResult receives the main result', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const results = []
  const ex = await sbx.runCode('6 * 7', { onResult: (r) => results.push(r) })
  assert.equal(results.length, 1)
  assert.equal(results[0].text, '42')
  assert.equal(results[0].isMainResult, true)
  assert.equal(ex.text, '42')
})

test('envs apply to one execution only', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const value = 'it\'s "quoted" \\ $HOME `x` ünï'
  const code = 'import os\nprint(os.environ.get("E2E_JS_ENV", "<unset>"))'
  const a = await sbx.runCode(code, { envs: { E2E_JS_ENV: value } })
  assert.equal(a.error, undefined, JSON.stringify(a.error))
  assert.equal(a.logs.stdout.join(''), value + '\n')
  const b = await sbx.runCode(code)
  assert.equal(b.logs.stdout.join(''), '<unset>\n', 'envs leaked into the next execution')
})

test('a client-side timeout interrupts the code; the sandbox stays usable', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  await sbx.runCode('before = 41')
  await assert.rejects(sbx.runCode('while True:\n    pass', { timeoutMs: 2_000 }), (e) => {
    assert.ok(e instanceof TimeoutError, describe(e))
    return true
  })
  // If the server did not interrupt the busy loop this would queue behind it.
  let next
  try {
    next = await sbx.runCode('before + 1', { timeoutMs: 15_000, requestTimeoutMs: 15_000 })
  } catch (e) {
    throw new Error(`the execution after an aborted busy loop failed (was the loop interrupted?): ${describe(e)}`)
  }
  assert.equal(next.error, undefined, JSON.stringify(next.error))
  assert.equal(next.text, '42')
})
