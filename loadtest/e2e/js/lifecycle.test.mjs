// Sandbox lifecycle through the unmodified e2b / @e2b/code-interpreter SDKs.
import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import {
  Sandbox,
  AuthenticationError,
  SandboxError,
  SandboxNotFoundError,
} from 'e2b'
import { Sandbox as CodeSandbox } from '@e2b/code-interpreter'
import { ID_RE, TEST_TIMEOUT, WRONG_API_KEY, Tracker, uniqueTag, waitFor, describe } from './helpers.mjs'

const tracker = new Tracker()
const track = (s) => tracker.add(s)
afterEach(() => tracker.killAll())

test('create a base sandbox: id format, isRunning', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = track(await Sandbox.create('base'))
  assert.match(sbx.sandboxId, ID_RE)
  assert.equal(await sbx.isRunning(), true)
})

test('create a code-interpreter sandbox with the default template', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = track(await CodeSandbox.create())
  assert.match(sbx.sandboxId, ID_RE)
  const info = await sbx.getInfo()
  assert.ok(
    [info.templateId, info.name].includes('code-interpreter-v1'),
    `templateId ${info.templateId} / name ${info.name}: want code-interpreter-v1 (the SDK default template)`,
  )
  const ex = await sbx.runCode('1 + 1')
  assert.equal(ex.text, '2')
})

test('getInfo: metadata, template, startedAt/endAt', { timeout: TEST_TIMEOUT }, async () => {
  const tag = uniqueTag('js-info')
  const before = Date.now()
  const sbx = track(await Sandbox.create('base', { metadata: { tag, owner: 'e2e-js' }, timeoutMs: 120_000 }))
  const after = Date.now()
  for (const info of [await sbx.getInfo(), await Sandbox.getInfo(sbx.sandboxId)]) {
    assert.equal(info.sandboxId, sbx.sandboxId)
    assert.deepEqual(info.metadata, { tag, owner: 'e2e-js' })
    assert.ok(
      info.templateId === 'base' || info.name === 'base',
      `templateId ${info.templateId} / name ${info.name} should name the base template`,
    )
    assert.equal(info.state, 'running')
    assert.match(info.envdVersion, /^\d+\.\d+\.\d+/)
    assert.ok(!Number.isNaN(info.startedAt.getTime()), `startedAt is not a date: ${info.startedAt}`)
    assert.ok(!Number.isNaN(info.endAt.getTime()), `endAt is not a date: ${info.endAt}`)
    // Same machine, so the clocks agree; allow for whole-second timestamps.
    assert.ok(
      info.startedAt.getTime() >= before - 2_000 && info.startedAt.getTime() <= after + 2_000,
      `startedAt ${info.startedAt.toISOString()} is not within the create call`,
    )
    const ttl = info.endAt.getTime() - info.startedAt.getTime()
    assert.ok(ttl > 110_000 && ttl < 130_000, `endAt - startedAt = ${ttl} ms, want about 120000 (timeoutMs)`)
  }
})

test('Sandbox.list: metadata filter and paging', { timeout: TEST_TIMEOUT }, async () => {
  const tag = uniqueTag('js-list')
  const odd = 'a&b=c d/é' // exercises the nested metadata encoding
  const mk = (grp) => Sandbox.create('base', { metadata: { tag, grp, 'odd key': odd } })
  const group = await Promise.all([mk('a'), mk('a'), mk('a')])
  group.forEach(track)
  track(await mk('b'))

  const paginator = Sandbox.list({ query: { metadata: { tag, grp: 'a', 'odd key': odd } }, limit: 2 })
  assert.equal(paginator.hasNext, true)
  const page1 = await paginator.nextItems()
  assert.equal(page1.length, 2, `first page: ${JSON.stringify(page1.map((s) => s.sandboxId))}`)
  assert.equal(paginator.hasNext, true, 'no X-Next-Token after a full first page of 2 (3 match)')
  const page2 = await paginator.nextItems()
  assert.equal(page2.length, 1, `second page: ${JSON.stringify(page2.map((s) => s.sandboxId))}`)
  assert.equal(paginator.hasNext, false, 'X-Next-Token on the last page')

  const got = [...page1, ...page2].map((s) => s.sandboxId).sort()
  assert.deepEqual(got, group.map((s) => s.sandboxId).sort())
  for (const s of [...page1, ...page2]) {
    assert.deepEqual(s.metadata, { tag, grp: 'a', 'odd key': odd })
    assert.equal(s.state, 'running')
    assert.match(s.sandboxId, ID_RE)
    assert.ok(s.endAt.getTime() > s.startedAt.getTime())
  }

  const all = await Sandbox.list({ query: { metadata: { tag }, state: ['running'] } }).nextItems()
  assert.equal(all.length, 4, `filter by tag and state=running: ${all.length} sandboxes, want 4`)
  const none = await Sandbox.list({ query: { metadata: { tag, grp: 'c' } } }).nextItems()
  assert.equal(none.length, 0)
})

test('setTimeout: the sandbox is gone after it expires', { timeout: TEST_TIMEOUT }, async () => {
  const tag = uniqueTag('js-ttl')
  const sbx = track(await Sandbox.create('base', { metadata: { tag } }))
  await sbx.setTimeout(3_000)
  const info = await sbx.getInfo()
  const left = info.endAt.getTime() - Date.now()
  assert.ok(left < 5_000 && left > -2_000, `after setTimeout(3000) endAt is ${left} ms away, want about 3000`)

  await waitFor(
    async () => {
      try {
        await Sandbox.getInfo(sbx.sandboxId)
        return false
      } catch (e) {
        if (e instanceof SandboxNotFoundError) return true
        throw e
      }
    },
    { timeoutMs: 30_000, intervalMs: 250, what: 'getInfo to throw SandboxNotFoundError after the timeout' },
  )
  assert.equal(await sbx.isRunning(), false)
  const listed = await Sandbox.list({ query: { metadata: { tag } } }).nextItems()
  assert.deepEqual(listed.map((s) => s.sandboxId), [])
  assert.equal(await Sandbox.kill(sbx.sandboxId), false)
})

test('kill twice: true, then false', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = track(await Sandbox.create('base'))
  assert.equal(await Sandbox.kill(sbx.sandboxId), true)
  assert.equal(await Sandbox.kill(sbx.sandboxId), false)
  assert.equal(await sbx.kill(), false)
  await assert.rejects(Sandbox.getInfo(sbx.sandboxId), SandboxNotFoundError)
  assert.equal(await sbx.isRunning(), false)
})

test('wrong API key: AuthenticationError', { timeout: TEST_TIMEOUT }, async () => {
  const opts = { apiKey: WRONG_API_KEY }
  const isAuth = (e) => {
    assert.ok(e instanceof AuthenticationError, describe(e))
    return true
  }
  await assert.rejects(Sandbox.create('base', opts).then(track), isAuth)
  await assert.rejects(Sandbox.list(opts).nextItems(), isAuth)
  await assert.rejects(Sandbox.kill('a'.repeat(20), opts), isAuth)
  await assert.rejects(Sandbox.getInfo('a'.repeat(20), opts), isAuth)
})

test('unknown template: a 4xx SandboxError naming the template', { timeout: TEST_TIMEOUT }, async () => {
  const name = uniqueTag('no-such-template')
  await assert.rejects(Sandbox.create(name).then(track), (e) => {
    assert.ok(e instanceof SandboxError && !(e instanceof AuthenticationError), describe(e))
    assert.match(e.message, /^(400|404): /, describe(e))
    assert.match(e.message.toLowerCase(), /template/, describe(e))
    return true
  })
})

test('Sandbox.connect to a running sandbox, then runCode', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = track(await CodeSandbox.create())
  await sbx.runCode('shared_value = 41')
  const again = await CodeSandbox.connect(sbx.sandboxId)
  assert.equal(again.sandboxId, sbx.sandboxId)
  assert.equal((await again.runCode('shared_value + 1')).text, '42')
  // The first handle keeps working (connect must not rotate its access token).
  assert.equal((await sbx.runCode('shared_value')).text, '41')
  assert.equal(await again.isRunning(), true)

  await Sandbox.kill(sbx.sandboxId)
  await assert.rejects(CodeSandbox.connect(sbx.sandboxId), SandboxNotFoundError)
})

test('getMetrics: CPU, memory and disk samples of a sandbox, and of a killed one', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = track(await CodeSandbox.create())
  await sbx.runCode('data = bytearray(32 << 20)') // 32 MiB in the kernel
  await sbx.files.write('/home/user/blob', 'x'.repeat(1 << 20))
  const first = await sbx.getMetrics()
  const metrics = await Sandbox.getMetrics(sbx.sandboxId)
  assert.ok(first.length >= 1 && metrics.length > first.length, `samples ${first.length} then ${metrics.length}`)
  const m = metrics[metrics.length - 1]
  assert.ok(m.timestamp instanceof Date && !Number.isNaN(m.timestamp.getTime()))
  assert.ok(m.cpuCount >= 1 && m.cpuUsedPct >= 0, JSON.stringify(m))
  assert.ok(m.memUsed >= 32 << 20 && m.memTotal > m.memUsed, JSON.stringify(m))
  assert.ok(m.diskUsed >= 1 << 20 && m.diskTotal > 0, JSON.stringify(m))
  // A window in the past holds nothing.
  assert.deepEqual(await sbx.getMetrics({ end: new Date(Date.now() - 3_600_000) }), [])
  await sbx.kill()
  await assert.rejects(Sandbox.getMetrics(sbx.sandboxId), SandboxNotFoundError)
})

test('network policies on the process runtime: a clear 501, never silently ignored', { timeout: TEST_TIMEOUT }, async () => {
  await assert.rejects(Sandbox.create({ allowInternetAccess: false }), (e) => {
    assert.ok(e instanceof SandboxError, describe(e))
    assert.match(e.message, /^501: .*jail runtime/, describe(e))
    return true
  })
  const sbx = track(await Sandbox.create())
  await assert.rejects(sbx.updateNetwork({ denyOut: ['10.0.0.0/8'] }), (e) => {
    assert.match(e.message, /501: .*-runtime jail/, describe(e))
    return true
  })
  await assert.rejects(sbx.updateNetwork({ allowOut: ['example.com'] }), /400: .*not an IPv4 address or CIDR/)
})
