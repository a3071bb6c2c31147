// envd's surface (port 49983: process.Process, filesystem.Filesystem, /files) through the unmodified
// e2b SDK: commands, background processes and stdin, PTYs, files, watches, signed URLs, large transfers.
import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { existsSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import {
  Sandbox,
  CommandExitError,
  FileNotFoundError,
  FileType,
  FilesystemEventType,
  InvalidArgumentError,
  SandboxError,
  TimeoutError,
} from 'e2b'
import { TEST_TIMEOUT, Tracker, waitFor, stripAnsi, describe } from './helpers.mjs'

const tracker = new Tracker()
const newSandbox = async () => tracker.add(await Sandbox.create('base'))
afterEach(() => tracker.killAll())

const BIG_TIMEOUT = 300_000
const sha256 = (data) => createHash('sha256').update(data).digest('hex')
const mb = (bytes) => (bytes / (1 << 20)).toFixed(1)
// Terminal output without escape sequences (including private modes such as bracketed paste, ESC[?2004h)
// and carriage returns.
const plainTerminal = (s) => stripAnsi(s.replace(/\u001b\[\?[0-9;]*[A-Za-z]/g, '')).replace(/\r/g, '')
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]

test('commands.run: stdout, stderr, exit code, envs, cwd, user', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const r = await sbx.commands.run('echo out; echo err >&2')
  assert.equal(r.exitCode, 0)
  assert.equal(r.stdout, 'out\n')
  assert.equal(r.stderr, 'err\n')
  assert.equal(r.error, undefined)

  assert.equal((await sbx.commands.run('echo "$FOO-$BAR"', { envs: { FOO: 'foo', BAR: 'b a r' } })).stdout, 'foo-b a r\n')

  assert.equal(await sbx.files.makeDir('/home/user/sub/dir'), true)
  const pwd = (await sbx.commands.run('pwd', { cwd: '/home/user/sub/dir' })).stdout.trim()
  assert.ok(pwd.endsWith('/home/user/sub/dir'), `pwd in cwd /home/user/sub/dir printed ${pwd}`)
  // Relative paths start at the user's home.
  await sbx.commands.run('echo here > marker.txt')
  assert.equal(await sbx.files.read('/home/user/marker.txt'), 'here\n')

  assert.equal((await sbx.commands.run('echo $USER', { user: 'root' })).stdout, 'root\n')
  assert.equal((await sbx.commands.run('echo $USER')).stdout, 'user\n')

  await assert.rejects(sbx.commands.run('echo partial; echo bad >&2; exit 3'), (e) => {
    assert.ok(e instanceof CommandExitError, describe(e))
    assert.equal(e.exitCode, 3)
    assert.equal(e.stdout, 'partial\n')
    assert.equal(e.stderr, 'bad\n')
    return true
  })
  // A missing program still starts; the shell reports it (exit 127), as in envd.
  await assert.rejects(sbx.commands.run('definitely-not-a-program-xyz'), (e) => {
    assert.ok(e instanceof CommandExitError, describe(e))
    assert.equal(e.exitCode, 127)
    return true
  })
  // A missing working directory is an RPC error before the process starts.
  await assert.rejects(sbx.commands.run('true', { cwd: '/home/user/does/not/exist' }), (e) => {
    assert.ok(e instanceof InvalidArgumentError, describe(e))
    return true
  })
})

test('commands.run latency (measurement)', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  for (let i = 0; i < 5; i++) await sbx.commands.run('true') // warm up connections
  const times = []
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now()
    const r = await sbx.commands.run('true')
    times.push(performance.now() - t0)
    assert.equal(r.exitCode, 0)
  }
  times.sort((a, b) => a - b)
  console.log(`commands.run('true'): p50 ${percentile(times, 50).toFixed(1)} ms, p90 ${percentile(times, 90).toFixed(1)} ms, p99 ${percentile(times, 99).toFixed(1)} ms`)
})

test('background command with stdin: sendStdin, closeStdin, kill', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  let seen = ''
  const cat = await sbx.commands.run('cat', { background: true, stdin: true, onStdout: (d) => { seen += d } })
  assert.ok(cat.pid > 0)
  await sbx.commands.sendStdin(cat.pid, 'hello\n')
  await waitFor(() => seen.includes('hello\n'), { what: 'cat to echo its stdin' })
  await sbx.commands.sendStdin(cat.pid, new TextEncoder().encode('bytes too\n'))
  await sbx.commands.closeStdin(cat.pid)
  const r = await cat.wait()
  assert.equal(r.exitCode, 0)
  assert.equal(r.stdout, 'hello\nbytes too\n')

  const cat2 = await sbx.commands.run('cat', { background: true, stdin: true })
  await sbx.commands.sendStdin(cat2.pid, 'x\n')
  assert.equal(await cat2.kill(), true)
  await assert.rejects(cat2.wait(), (e) => {
    assert.ok(e instanceof CommandExitError, describe(e))
    assert.notEqual(e.exitCode, 0)
    return true
  })
  // A process started without stdin has none to write to.
  const nostdin = await sbx.commands.run('sleep 30', { background: true })
  await assert.rejects(sbx.commands.sendStdin(nostdin.pid, 'x'), SandboxError)
  await nostdin.kill()
})

test('commands.list, commands.connect, commands.kill', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const sleeper = await sbx.commands.run('sleep 60', { background: true })
  const ticker = await sbx.commands.run('for i in $(seq 1 600); do echo tick$i; sleep 0.1; done', { background: true })
  const list = await sbx.commands.list()
  const mine = list.find((p) => p.pid === sleeper.pid)
  assert.ok(mine, `pid ${sleeper.pid} not in ${JSON.stringify(list)}`)
  assert.ok([mine.cmd, ...mine.args].join(' ').includes('sleep 60'), JSON.stringify(mine))
  assert.ok(list.some((p) => p.pid === ticker.pid))

  let fromConnect = ''
  const conn = await sbx.commands.connect(ticker.pid, { onStdout: (d) => { fromConnect += d } })
  assert.equal(conn.pid, ticker.pid)
  await waitFor(() => /tick\d+\n/.test(fromConnect), { what: 'output through commands.connect' })

  assert.equal(await sbx.commands.kill(ticker.pid), true)
  await assert.rejects(conn.wait(), CommandExitError)
  assert.equal(await sbx.commands.kill(sleeper.pid), true)
  await waitFor(async () => !(await sbx.commands.list()).some((p) => p.pid === sleeper.pid || p.pid === ticker.pid), { what: 'killed processes to leave the list' })
  assert.equal(await sbx.commands.kill(sleeper.pid), false)
  assert.equal(await sbx.commands.kill(999_999), false)
})

test('timeoutMs ends a long command', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const t0 = performance.now()
  await assert.rejects(sbx.commands.run('sleep 30; echo done', { timeoutMs: 1500 }), (e) => {
    assert.ok(e instanceof TimeoutError, describe(e))
    return true
  })
  const took = performance.now() - t0
  assert.ok(took < 20_000, `a 1.5 s timeout took ${took} ms`)
  // The process was killed with its stream, as envd does.
  await waitFor(async () => !(await sbx.commands.list()).some((p) => p.args.join(' ').includes('sleep 30')), { what: 'the timed-out command to be gone' })
})

test('files: write and read text and bytes, several at once', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const info = await sbx.files.write('/home/user/a.txt', 'hello files')
  assert.equal(info.path, '/home/user/a.txt')
  assert.equal(info.name, 'a.txt')
  assert.equal(await sbx.files.read('/home/user/a.txt'), 'hello files')
  // Relative paths are relative to the home directory.
  await sbx.files.write('rel/b.txt', 'relative')
  assert.equal(await sbx.files.read('/home/user/rel/b.txt'), 'relative')

  const bytes = new Uint8Array(256).map((_, i) => i)
  await sbx.files.write('/home/user/bin.dat', bytes.buffer)
  assert.deepEqual(await sbx.files.read('/home/user/bin.dat', { format: 'bytes' }), bytes)
  const blob = await sbx.files.read('/home/user/bin.dat', { format: 'blob' })
  assert.equal(blob.size, 256)

  const many = await sbx.files.write([
    { path: '/home/user/m/1.txt', data: 'one' },
    { path: '/home/user/m/2.txt', data: 'two' },
    { path: '/home/user/m/deep/3.bin', data: new Uint8Array([3, 3, 3]).buffer },
  ])
  assert.deepEqual(many.map((w) => w.path).sort(), ['/home/user/m/1.txt', '/home/user/m/2.txt', '/home/user/m/deep/3.bin'])
  assert.equal(await sbx.files.read('/home/user/m/2.txt'), 'two')
  assert.deepEqual(await sbx.files.read('/home/user/m/deep/3.bin', { format: 'bytes' }), new Uint8Array([3, 3, 3]))

  // Empty files and overwrites.
  await sbx.files.write('/home/user/empty', '')
  assert.equal(await sbx.files.read('/home/user/empty'), '')
  await sbx.files.write('/home/user/a.txt', 'replaced')
  assert.equal(await sbx.files.read('/home/user/a.txt'), 'replaced')

  // A streamed, gzip-encoded upload (octet-stream) and a streamed read.
  const payload = randomBytes(3 << 20)
  const stream = new Blob([payload]).stream()
  await sbx.files.write('/home/user/streamed.bin', stream, { gzip: true })
  const rs = await sbx.files.read('/home/user/streamed.bin', { format: 'stream' })
  const chunks = []
  for await (const c of rs) chunks.push(c)
  assert.equal(sha256(Buffer.concat(chunks)), sha256(payload))

  await assert.rejects(sbx.files.read('/home/user/nope.txt'), FileNotFoundError)
})

test('files: list with depth, exists, getInfo, makeDir, rename, remove', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  assert.equal(await sbx.files.makeDir('/home/user/t/a/b'), true)
  assert.equal(await sbx.files.makeDir('/home/user/t/a/b'), false)
  await sbx.files.write('/home/user/t/top.txt', '12345')
  await sbx.files.write('/home/user/t/a/b/leaf.txt', 'leaf')

  const one = await sbx.files.list('/home/user/t')
  assert.deepEqual(one.map((e) => e.name).sort(), ['a', 'top.txt'])
  const top = one.find((e) => e.name === 'top.txt')
  assert.equal(top.type, FileType.FILE)
  assert.equal(top.path, '/home/user/t/top.txt')
  assert.equal(top.size, 5)
  assert.equal(one.find((e) => e.name === 'a').type, FileType.DIR)

  const deep = await sbx.files.list('/home/user/t', { depth: 3 })
  assert.deepEqual(deep.map((e) => e.path).sort(), ['/home/user/t/a', '/home/user/t/a/b', '/home/user/t/a/b/leaf.txt', '/home/user/t/top.txt'])
  await assert.rejects(sbx.files.list('/home/user/t/top.txt'), SandboxError) // not a directory
  await assert.rejects(sbx.files.list('/home/user/none'), FileNotFoundError)

  assert.equal(await sbx.files.exists('/home/user/t/top.txt'), true)
  assert.equal(await sbx.files.exists('/home/user/t/missing'), false)
  const info = await sbx.files.getInfo('/home/user/t/top.txt')
  assert.equal(info.name, 'top.txt')
  assert.equal(info.type, FileType.FILE)
  assert.equal(info.size, 5)
  assert.match(info.permissions, /^-rw/)
  assert.ok(info.modifiedTime instanceof Date && !Number.isNaN(info.modifiedTime.getTime()), `modifiedTime ${info.modifiedTime}`)
  assert.equal((await sbx.files.getInfo('/home/user/t/a')).type, FileType.DIR)
  await assert.rejects(sbx.files.getInfo('/home/user/t/missing'), FileNotFoundError)

  const moved = await sbx.files.rename('/home/user/t/top.txt', '/home/user/t/a/moved.txt')
  assert.equal(moved.path, '/home/user/t/a/moved.txt')
  assert.equal(await sbx.files.exists('/home/user/t/top.txt'), false)
  assert.equal(await sbx.files.read('/home/user/t/a/moved.txt'), '12345')
  await assert.rejects(sbx.files.rename('/home/user/t/gone', '/home/user/t/x'), FileNotFoundError)

  await sbx.files.remove('/home/user/t/a/moved.txt')
  assert.equal(await sbx.files.exists('/home/user/t/a/moved.txt'), false)
  await sbx.files.remove('/home/user/t')
  assert.equal(await sbx.files.exists('/home/user/t'), false)
  await sbx.files.remove('/home/user/t') // removing a missing path succeeds
})

test('files.watchDir sees a file that a command creates', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  await sbx.files.makeDir('/home/user/watched')
  const events = []
  const handle = await sbx.files.watchDir('/home/user/watched', (ev) => { events.push(ev) })
  try {
    // The command runs in the home directory, so a relative path lands in the watched directory.
    await sbx.commands.run('echo data > watched/from-command.txt')
    await waitFor(() => events.some((e) => e.name === 'from-command.txt' && [FilesystemEventType.CREATE, FilesystemEventType.WRITE].includes(e.type)), {
      what: `a create event for from-command.txt (got ${JSON.stringify(events)})`,
    })
  } finally {
    await handle.stop()
  }
  await assert.rejects(sbx.files.watchDir('/home/user/not-there', () => {}), FileNotFoundError)
})

test('downloadUrl and uploadUrl work with plain fetch (signed URLs)', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const up = await sbx.uploadUrl('/home/user/via-url.txt')
  assert.match(up, /signature=v1_/, 'a secured sandbox signs its URLs')
  const form = new FormData()
  form.append('file', new Blob(['sent with fetch']), 'via-url.txt')
  const res = await fetch(up, { method: 'POST', body: form })
  assert.equal(res.status, 200, await res.clone().text())
  const written = await res.json()
  assert.equal(written[0].path, '/home/user/via-url.txt')

  const down = await sbx.downloadUrl('/home/user/via-url.txt')
  const got = await fetch(down)
  assert.equal(got.status, 200)
  assert.equal(await got.text(), 'sent with fetch')
  assert.match(got.headers.get('content-disposition') ?? '', /^inline; filename=/)

  const withExpiry = await sbx.downloadUrl('/home/user/via-url.txt', { useSignatureExpiration: 60 })
  assert.match(withExpiry, /signature_expiration=\d+/)
  assert.equal(await (await fetch(withExpiry)).text(), 'sent with fetch')

  const expired = await sbx.downloadUrl('/home/user/via-url.txt', { useSignatureExpiration: -60 })
  assert.equal((await fetch(expired)).status, 401)
  const tampered = down.replace(/signature=v1_./, 'signature=v1_X')
  assert.equal((await fetch(tampered)).status, 401)
  // A read signature does not authorise a write.
  assert.equal((await fetch(down, { method: 'POST', body: form })).status, 401)
  // The routed request without any credential is refused.
  const bare = new URL('/files', process.env.E2B_SANDBOX_URL)
  bare.searchParams.set('path', '/home/user/via-url.txt')
  const unauth = await fetch(bare, { headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49983' } })
  assert.equal(unauth.status, 401)
  assert.equal((await unauth.json()).code, 401)
})

test('plain HTTP: /envs, /health, token checks, unknown paths', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = tracker.add(await Sandbox.create('base', { envs: { FB_GLOBAL: 'g1' } }))
  const routed = { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49983' }
  const at = (p) => new URL(p, process.env.E2B_SANDBOX_URL)
  const envs = await fetch(at('/envs'), { headers: { ...routed, 'X-Access-Token': sbx.envdAccessToken } })
  assert.equal(envs.status, 200)
  assert.equal((await envs.json()).FB_GLOBAL, 'g1')
  // Sandbox-global env vars reach processes too.
  assert.equal((await sbx.commands.run('echo $FB_GLOBAL')).stdout, 'g1\n')

  const denied = await fetch(at('/envs'), { headers: routed })
  assert.equal(denied.status, 401)
  assert.deepEqual(await denied.json(), {
    code: 401,
    message: 'unauthorized access, please provide a valid access token or method signing if supported',
  })
  const wrong = await fetch(at('/envs'), { headers: { ...routed, 'X-Access-Token': 'not-the-token' } })
  assert.equal(wrong.status, 401)

  const health = await fetch(at('/health'), { headers: routed })
  assert.equal(health.status, 204)

  const unknown = await fetch(at('/no/such/envd/path'), { headers: { ...routed, 'X-Access-Token': sbx.envdAccessToken } })
  assert.equal(unknown.status, 404)
  assert.doesNotMatch(await unknown.text(), /^\{/, 'an unknown envd path is a plain-text 404')
})

test('upload and download a 50 MB file intact (measurement)', { timeout: BIG_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const data = randomBytes(50 << 20)
  const want = sha256(data)
  let t0 = performance.now()
  await sbx.files.write('/home/user/big.bin', new Blob([data]), { requestTimeoutMs: BIG_TIMEOUT })
  const upMs = performance.now() - t0
  assert.equal((await sbx.files.getInfo('/home/user/big.bin')).size, data.length)
  // Hash it inside the sandbox too: the bytes on disk are the ones sent.
  const inside = (await sbx.commands.run('sha256sum big.bin')).stdout.split(' ')[0]
  assert.equal(inside, want)

  t0 = performance.now()
  const got = await sbx.files.read('/home/user/big.bin', { format: 'bytes', requestTimeoutMs: BIG_TIMEOUT })
  const downMs = performance.now() - t0
  assert.equal(got.length, data.length)
  assert.equal(sha256(got), want)
  console.log(`50 MiB: upload ${upMs.toFixed(0)} ms (${mb(data.length / (upMs / 1000))} MiB/s), download ${downMs.toFixed(0)} ms (${mb(data.length / (downMs / 1000))} MiB/s)`)
})

test('a 20 MB stdout arrives complete and in order', { timeout: BIG_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const lines = 1_000_000 // seq -w: 7 digits and a newline per line, 8 MB; three rounds pass 20 MB
  const cmd = `for r in 1 2 3; do seq -w 1 ${lines}; done`
  const t0 = performance.now()
  const r = await sbx.commands.run(cmd, { timeoutMs: BIG_TIMEOUT, requestTimeoutMs: BIG_TIMEOUT })
  const ms = performance.now() - t0
  const one = Array.from({ length: lines }, (_, i) => String(i + 1).padStart(7, '0')).join('\n') + '\n'
  const want = one + one + one
  assert.equal(r.stdout.length, want.length, `got ${r.stdout.length} bytes of stdout, want ${want.length}`)
  assert.equal(sha256(r.stdout), sha256(want))
  console.log(`stdout of ${mb(want.length)} MiB in ${ms.toFixed(0)} ms`)
})

test('pty: create, sendInput, resize, kill', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  let out = ''
  const dec = new TextDecoder()
  const term = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => { out += dec.decode(d, { stream: true }) } })
  assert.ok(term.pid > 0)
  await sbx.pty.sendInput(term.pid, new TextEncoder().encode('echo hi\n'))
  await waitFor(() => /\nhi\n/.test(plainTerminal(out)), { what: `"hi" on the terminal (got ${JSON.stringify(plainTerminal(out))})` })
  await sbx.pty.resize(term.pid, { cols: 120, rows: 40 })
  await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size\n'))
  await waitFor(() => plainTerminal(out).includes('\n40 120\n'), { what: `the new size from stty (got ${JSON.stringify(plainTerminal(out))})` })
  assert.ok((await sbx.commands.list()).some((p) => p.pid === term.pid))
  assert.equal(await sbx.pty.kill(term.pid), true)
  await term.wait().catch(() => undefined)
  assert.equal(await sbx.pty.kill(term.pid), false)
})

test('paths cannot escape the sandbox', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const tag = randomUUID()
  const hostSecret = join(tmpdir(), `fleetbox-secret-${tag}`)
  writeFileSync(hostSecret, 'host secret')
  const escapes = [join(tmpdir(), `fleetbox-escape-a-${tag}`), join(tmpdir(), `fleetbox-escape-b-${tag}`)]
  try {
    // ".." above the root: refused, or kept inside the sandbox, never written on the host.
    await sbx.files.write(`../../../../../../../..${escapes[0]}`, 'x').catch(() => undefined)
    assert.equal(existsSync(escapes[0]), false, `${escapes[0]} was written on the host`)
    // A symlink to a host directory (made by a command; in the process runtime commands see the host).
    await sbx.commands.run(`ln -s ${tmpdir()} hostlink`)
    await assert.rejects(sbx.files.read(`/home/user/hostlink/fleetbox-secret-${tag}`), SandboxError)
    await sbx.files.write(`/home/user/hostlink/fleetbox-escape-b-${tag}`, 'x').catch(() => undefined)
    assert.equal(existsSync(escapes[1]), false, `${escapes[1]} was written through a symlink`)
    const listed = await sbx.files.list('/home/user/hostlink').catch(() => [])
    assert.ok(!listed.some((e) => e.name === `fleetbox-secret-${tag}`), 'a host directory was listed through a symlink')
  } finally {
    rmSync(hostSecret, { force: true })
    for (const p of escapes) rmSync(p, { force: true })
  }
})

test('isRunning follows the sandbox', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  assert.equal(await sbx.isRunning(), true)
  await sbx.kill()
  await waitFor(async () => (await sbx.isRunning()) === false, { what: 'isRunning() to turn false after kill' })
})
