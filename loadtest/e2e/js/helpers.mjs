// Shared helpers for the fleetbox JS end-to-end suites (node:test).
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Sandbox as BaseSandbox } from 'e2b'

for (const k of ['E2B_API_URL', 'E2B_SANDBOX_URL', 'E2B_API_KEY']) {
  if (!process.env[k]) {
    throw new Error(
      `${k} is not set. These tests run against a live fleetbox: use ` +
        '`go test ./e2e/ -run TestJSSDK` from loadtest/ (see loadtest/e2e/README.md).',
    )
  }
}
if (process.env.E2B_DEBUG) throw new Error('E2B_DEBUG must not be set: debug mode skips the API')

export const ID_RE = /^[a-z0-9]{20}$/
export const TEST_TIMEOUT = 90_000
export const WRONG_API_KEY = 'e2b_' + '0'.repeat(40)

export const uniqueTag = (prefix) => `${prefix}-${randomUUID()}`

/** Remembers sandbox ids and kills them all in afterEach. */
export class Tracker {
  constructor() {
    this.ids = new Set()
  }
  add(sbx) {
    this.ids.add(typeof sbx === 'string' ? sbx : sbx.sandboxId)
    return sbx
  }
  async killAll() {
    const ids = [...this.ids]
    this.ids.clear()
    await Promise.all(ids.map((id) => BaseSandbox.kill(id).catch(() => undefined)))
  }
}

/**
 * Polls fn until it returns a truthy value. Errors thrown by fn count as
 * "not yet" and the last one is reported on timeout.
 */
export async function waitFor(fn, { timeoutMs = 30_000, intervalMs = 200, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs
  let last
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `; last error: ${last}` : ''}`)
    }
    await sleep(intervalMs)
  }
}

export const stripAnsi = (s) => s.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '')

/** Describes an error for assertion messages. */
export const describe = (e) => `${e?.constructor?.name ?? typeof e}: ${e?.message ?? e}`
