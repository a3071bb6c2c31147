// Pause, resume (connect) and snapshots through the unmodified e2b / @e2b/code-interpreter SDKs.
// Sandboxes pause in place: files, processes and the code kernel's memory all survive a pause.
import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Sandbox, SandboxError, SandboxNotFoundError } from 'e2b'
import { Sandbox as CodeSandbox } from '@e2b/code-interpreter'
import { TEST_TIMEOUT, Tracker, uniqueTag, waitFor, describe } from './helpers.mjs'

const tracker = new Tracker()
const track = (s) => tracker.add(s)
const snapshots = new Set()
afterEach(async () => {
  await tracker.killAll()
  const ids = [...snapshots]
  snapshots.clear()
  await Promise.all(ids.map((id) => Sandbox.deleteSnapshot(id).catch(() => undefined)))
})

// A loop that counts in a file five times a second: it shows whether its process runs. (Commands name
// it relative to their working directory, the user's home: the process runtime of CI does not isolate
// the file system, so only the SDK's file API maps /home/user into the sandbox.)
const COUNTER = '/home/user/counter'
const counterLoop = 'i=0; while true; do i=$((i+1)); echo $i > counter; sleep 0.2; done'
const readCounter = async (sbx) => Number((await sbx.files.read(COUNTER)).trim())

test('pause: true, then false; connect resumes with files, processes and kernel memory', { timeout: TEST_TIMEOUT }, async () => {
  const tag = uniqueTag('js-pause')
  const sbx = track(await CodeSandbox.create({ metadata: { tag } }))
  await sbx.runCode('x = 41')
  await sbx.files.write('/home/user/before.txt', 'written before the pause')
  const loop = await sbx.commands.run(counterLoop, { background: true })
  await waitFor(async () => (await readCounter(sbx)) >= 3, { what: 'the counter loop to count' })

  const before = await readCounter(sbx)
  assert.equal(await sbx.pause(), true, 'first pause')
  assert.equal(await sbx.pause(), false, 'second pause: already paused')
  assert.equal(await Sandbox.pause(sbx.sandboxId), false, 'static pause of a paused sandbox')

  const info = await Sandbox.getInfo(sbx.sandboxId)
  assert.equal(info.state, 'paused')
  const listed = async (state) =>
    (await Sandbox.list({ query: { metadata: { tag }, state: [state] } }).nextItems()).map((s) => `${s.sandboxId}:${s.state}`)
  assert.deepEqual(await listed('paused'), [`${sbx.sandboxId}:paused`])
  assert.deepEqual(await listed('running'), [])
  assert.deepEqual(
    (await Sandbox.list({ query: { metadata: { tag } } }).nextItems()).map((s) => s.state),
    ['paused'],
    'the default list shows paused sandboxes too',
  )
  // The data plane of a paused sandbox refuses work (E2B's proxy answers 409) rather than hanging.
  await assert.rejects(sbx.files.read('/home/user/before.txt'), (e) => {
    assert.ok(e instanceof Error, describe(e))
    return true
  })

  await sleep(2_000) // the loop would count about 10 in this time if it still ran
  const resumed = await CodeSandbox.connect(sbx.sandboxId)
  assert.equal(resumed.sandboxId, sbx.sandboxId)
  const after = await readCounter(resumed)
  assert.ok(after - before < 8, `the counter went from ${before} to ${after} while paused for 2 s: the loop was not stopped`)

  assert.equal((await resumed.runCode('x + 1')).text, '42', 'kernel memory survives the pause')
  assert.equal(await resumed.files.read('/home/user/before.txt'), 'written before the pause')
  assert.ok((await resumed.commands.list()).some((p) => p.pid === loop.pid), `pid ${loop.pid} is gone after resume`)
  await waitFor(async () => (await readCounter(resumed)) > after + 2, { what: 'the loop to count again after resume' })
  // The first handle works again too (same token).
  assert.equal((await sbx.commands.run('echo still here')).stdout, 'still here\n')

  const running = await Sandbox.getInfo(sbx.sandboxId)
  assert.equal(running.state, 'running')
  const ttl = running.endAt.getTime() - Date.now()
  assert.ok(ttl > 250_000 && ttl < 310_000, `after connect the sandbox ends in ${ttl} ms, want about 300 s`)

  // Connecting to a running sandbox keeps it running; pausing works again after a resume.
  await Sandbox.connect(sbx.sandboxId)
  assert.equal(await sbx.pause(), true)
  const again = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 60_000 })
  assert.equal((await again.commands.run('cat before.txt')).stdout, 'written before the pause')
})

test('onTimeout pause: the timeout pauses the sandbox instead of killing it; connect resumes it', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = track(await CodeSandbox.create({ timeoutMs: 5_000, lifecycle: { onTimeout: 'pause' } }))
  await sbx.runCode('y = 7')
  await waitFor(async () => (await Sandbox.getInfo(sbx.sandboxId)).state === 'paused', {
    timeoutMs: 30_000,
    what: 'the sandbox to be paused at its timeout',
  })
  const resumed = await CodeSandbox.connect(sbx.sandboxId, { timeoutMs: 60_000 })
  assert.equal((await resumed.runCode('y * 6')).text, '42')
  assert.equal((await Sandbox.getInfo(sbx.sandboxId)).state, 'running')
})

test('autoResume: traffic to a sandbox paused at its timeout resumes it, kernel memory kept', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = track(await CodeSandbox.create({ timeoutMs: 5_000, lifecycle: { onTimeout: 'pause', autoResume: true } }))
  await sbx.runCode('z = 5')
  await waitFor(async () => (await Sandbox.getInfo(sbx.sandboxId)).state === 'paused', {
    timeoutMs: 30_000,
    what: 'the sandbox to be paused at its timeout',
  })
  // No connect: the next request wakes it.
  assert.equal((await sbx.runCode('z * 2')).text, '10')
  const info = await Sandbox.getInfo(sbx.sandboxId)
  assert.equal(info.state, 'running')
})

test('pause and connect of a sandbox that does not exist', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await Sandbox.create('base')
  await sbx.kill()
  await assert.rejects(Sandbox.pause(sbx.sandboxId), SandboxNotFoundError)
  await assert.rejects(Sandbox.connect(sbx.sandboxId), SandboxNotFoundError)
})

test('killing a paused sandbox', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = track(await Sandbox.create('base'))
  assert.equal(await sbx.pause(), true)
  assert.equal(await Sandbox.kill(sbx.sandboxId), true)
  await assert.rejects(Sandbox.getInfo(sbx.sandboxId), SandboxNotFoundError)
  await assert.rejects(Sandbox.connect(sbx.sandboxId), SandboxNotFoundError)
})

test('snapshots: create, create sandboxes from it, list, delete', { timeout: TEST_TIMEOUT }, async () => {
  const src = track(await Sandbox.create('base', { envs: { FROM_SOURCE: 'yes' } }))
  await src.files.write('/home/user/snap.txt', 'in the snapshot')

  const snap = await src.createSnapshot()
  snapshots.add(snap.snapshotId)
  assert.ok(snap.snapshotId, JSON.stringify(snap))
  assert.deepEqual(snap.names, [snap.snapshotId], 'an unnamed snapshot is known by its id')
  // The source keeps running, and changes after a snapshot are not in it.
  assert.equal((await Sandbox.getInfo(src.sandboxId)).state, 'running')
  await src.files.write('/home/user/snap.txt', 'changed after the snapshot')

  const name = `js-snap-${randomUUID().slice(0, 8)}`
  const named = await Sandbox.createSnapshot(src.sandboxId, { name })
  snapshots.add(named.snapshotId)
  assert.deepEqual(named.names, [name])
  await assert.rejects(src.createSnapshot({ name }), (e) => {
    assert.ok(e instanceof SandboxError, describe(e))
    assert.match(e.message, /409/)
    return true
  })

  const child = track(await Sandbox.create(snap.snapshotId, { envs: { FROM_CHILD: 'yes' } }))
  assert.notEqual(child.sandboxId, src.sandboxId)
  assert.equal(await child.files.read('/home/user/snap.txt'), 'in the snapshot')
  assert.equal((await child.commands.run('echo "$FROM_SOURCE $FROM_CHILD"')).stdout, 'yes yes\n')
  assert.equal((await child.getInfo()).templateId, snap.snapshotId)

  // By name, and after the source is gone: snapshots outlive their sandbox.
  await src.kill()
  const byName = track(await Sandbox.create(name))
  assert.equal(await byName.files.read('/home/user/snap.txt'), 'changed after the snapshot')

  const listedFor = await Sandbox.listSnapshots({ sandboxId: src.sandboxId }).nextItems()
  assert.deepEqual(listedFor.map((s) => s.snapshotId).sort(), [snap.snapshotId, named.snapshotId].sort())
  assert.deepEqual((await Sandbox.listSnapshots({ name }).nextItems()).map((s) => s.snapshotId), [named.snapshotId])
  const pager = Sandbox.listSnapshots({ sandboxId: src.sandboxId, limit: 1 })
  const seen = []
  while (pager.hasNext) seen.push(...(await pager.nextItems()).map((s) => s.snapshotId))
  assert.deepEqual(seen.sort(), [snap.snapshotId, named.snapshotId].sort(), 'paging with limit 1')

  assert.equal(await Sandbox.deleteSnapshot(snap.snapshotId), true)
  assert.equal(await Sandbox.deleteSnapshot(snap.snapshotId), false)
  assert.equal(await Sandbox.deleteSnapshot(name), true, 'delete by name')
  assert.equal(await Sandbox.deleteSnapshot('base'), false, 'a built-in template is no snapshot')
  assert.deepEqual(await Sandbox.listSnapshots({ sandboxId: src.sandboxId }).nextItems(), [])
  await assert.rejects(Sandbox.create(snap.snapshotId), (e) => {
    assert.ok(e instanceof Error, describe(e))
    return true
  })
  // Sandboxes already made from a snapshot live on without it.
  assert.equal(await child.files.read('/home/user/snap.txt'), 'in the snapshot')
})

test('fork: new sandboxes with a copy of the files, the source untouched', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = track(await Sandbox.create())
  await sbx.files.write('/home/user/forked.txt', 'from the source')
  const forks = await sbx.fork({ count: 2 })
  assert.equal(forks.length, 2)
  for (const f of forks) {
    assert.ok(f instanceof Sandbox, describe(f))
    track(f)
    assert.notEqual(f.sandboxId, sbx.sandboxId)
    assert.equal(await f.files.read('/home/user/forked.txt'), 'from the source')
    await f.files.write('/home/user/forked.txt', `changed in ${f.sandboxId}`)
  }
  assert.equal(await sbx.files.read('/home/user/forked.txt'), 'from the source')
  assert.equal((await Sandbox.getInfo(forks[0].sandboxId)).templateId, (await Sandbox.getInfo(sbx.sandboxId)).templateId)
})
