// The fleetbox-specific GET /execute/ws endpoint, driven with the `ws` package.
import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { Sandbox } from '@e2b/code-interpreter'
import { TEST_TIMEOUT, Tracker } from './helpers.mjs'

const tracker = new Tracker()
afterEach(() => tracker.killAll())

const wsURL = (query = '') => process.env.E2B_SANDBOX_URL.replace(/^http/, 'ws').replace(/\/$/, '') + '/execute/ws' + query

async function newSandbox() {
  const sbx = tracker.add(await Sandbox.create())
  assert.ok(sbx.envdAccessToken, 'the sandbox has no envdAccessToken (v2 creates are always secured)')
  return sbx
}

const routingHeaders = (sbx, token = sbx.envdAccessToken) => ({
  'E2b-Sandbox-Id': sbx.sandboxId,
  'E2b-Sandbox-Port': '49999',
  'X-Access-Token': token,
})

/**
 * Opens the socket, sends one request frame and collects every message until
 * the server closes. With pauseMs the client stops reading right after
 * sending, to exercise back-pressure. A refused handshake resolves with
 * {status, body}.
 */
function runWs(url, headers, body, { pauseMs = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false })
    const messages = []
    ws.on('open', () => {
      ws.send(JSON.stringify(body))
      if (pauseMs) {
        ws.pause()
        setTimeout(() => ws.resume(), pauseMs)
      }
    })
    ws.on('message', (data, isBinary) => {
      if (isBinary) return reject(new Error(`binary message #${messages.length + 1}; want text frames`))
      try {
        messages.push(JSON.parse(data.toString()))
      } catch (e) {
        reject(new Error(`message #${messages.length + 1} is not one JSON object: ${data.toString().slice(0, 200)}`))
      }
    })
    ws.on('close', (code) => resolve({ messages, code }))
    ws.on('error', reject)
    ws.on('unexpected-response', (req, res) => {
      // With this listener ws leaves the request alone: close its socket
      // ourselves or it keeps the process alive.
      const socket = res.socket
      let text = ''
      res.on('data', (c) => (text += c))
      res.on('end', () => {
        socket.destroy()
        req.destroy()
        resolve({ status: res.statusCode, body: text })
      })
    })
  })
}

function checkStream({ messages, code }) {
  assert.equal(code, 1000, 'close code')
  assert.ok(messages.length >= 2, `only ${messages.length} messages`)
  assert.equal(messages[0].type, 'number_of_executions')
  assert.equal(messages.at(-1).type, 'end_of_execution')
  assert.equal(messages.filter((m) => m.type === 'end_of_execution').length, 1)
}
const stdoutOf = (messages) => messages.filter((m) => m.type === 'stdout').map((m) => m.text).join('')

test('ws: routing by headers', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const res = await runWs(wsURL(), routingHeaders(sbx), { code: 'print("alpha")\nprint("beta")\n40 + 2' })
  checkStream(res)
  assert.equal(stdoutOf(res.messages), 'alpha\nbeta\n')
  const results = res.messages.filter((m) => m.type === 'result')
  assert.equal(results.length, 1)
  assert.equal(results[0].text, '42')
})

test('ws: routing by query parameters; state shared with runCode', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const q = new URLSearchParams({ sandboxId: sbx.sandboxId, accessToken: sbx.envdAccessToken })
  const res = await runWs(wsURL('?' + q), {}, { code: 'ws_value = 6\nprint("ok")', env_vars: { E2E_WS: '1' } })
  checkStream(res)
  assert.equal(stdoutOf(res.messages), 'ok\n')
  assert.equal((await sbx.runCode('ws_value * 7')).text, '42')
})

test('ws: a slow reader still gets every line, in order', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const n = 20000
  const code = `for i in range(${n}):\n    print(f'{i:06d} ' + 'y'*90)`
  const res = await runWs(wsURL(), routingHeaders(sbx), { code }, { pauseMs: 2000 })
  checkStream(res)
  const lines = stdoutOf(res.messages).split('\n')
  assert.equal(lines.pop(), '')
  assert.equal(lines.length, n)
  const y = 'y'.repeat(90)
  for (let i = 0; i < n; i++) {
    if (lines[i] !== `${String(i).padStart(6, '0')} ${y}`) assert.fail(`line ${i} is ${lines[i].slice(0, 40)}`)
  }
})

test('ws: a wrong access token is refused with 401', { timeout: TEST_TIMEOUT }, async () => {
  const sbx = await newSandbox()
  const res = await runWs(wsURL(), routingHeaders(sbx, 'wrong-token'), { code: '1' })
  assert.equal(res.status, 401, `got ${JSON.stringify(res)}`)
  const body = JSON.parse(res.body)
  assert.equal(body.code, 401)
  assert.ok(body.message)
})
