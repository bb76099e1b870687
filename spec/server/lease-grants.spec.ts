/**
 * LeaseGrants: a connection's `locate` grants hold their blocks' leases
 * until released, expired or the connection closes, each lease let go once;
 * a grant that ends without its release says so first; the bytes held are
 * counted against the connection's limit.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import { GRANT_TTL_MS, LeaseGrants } from '../../lib/server/lease-grants.js'
import { within } from '../helpers/wait.js'

describe('LeaseGrants', () => {
  test('a grant ends on release, at its ttl, or when the connection closes; each lease once', async () => {
    const released: number[] = []
    const lease = (n: number) => ({ release: () => void released.push(n) })
    const grants = new LeaseGrants(100, 40)
    const a = grants.grant([lease(1), lease(2)], 60)
    assert.equal(grants.room, 40)
    assert.equal(grants.release(a), true)
    assert.equal(grants.release(a), false)
    assert.deepEqual(released, [1, 2])
    grants.grant([lease(3)], 10)
    await new Promise((r) => setTimeout(r, 80))
    assert.deepEqual(released, [1, 2, 3], 'the ttl ended it')
    grants.grant([lease(4)], 10)
    grants.close()
    assert.deepEqual(released, [1, 2, 3, 4])
    assert.equal(grants.bytes, 0)
  })

  test('a grant that ends without its release says so (the client may have spliced its pages)', async () => {
    const lapsed: string[] = []
    const grants = new LeaseGrants(100, 40)
    const released = grants.grant([], 1, () => lapsed.push('released'))
    grants.grant([], 1, () => lapsed.push('ttl'))
    grants.release(released)
    await new Promise((r) => setTimeout(r, 80))
    grants.grant([], 1, () => lapsed.push('closed'))
    grants.close()
    assert.deepEqual(lapsed, ['ttl', 'closed'])
  })

  test('a lapsed grant says so before its leases go, while the blocks are still held', () => {
    const events: string[] = []
    const grants = new LeaseGrants(100, 60_000)
    grants.grant([{ release: () => void events.push('lease a') }, { release: () => void events.push('lease b') }], 10, () => events.push('lapsed'))
    grants.close()
    assert.deepEqual(events, ['lapsed', 'lease a', 'lease b'])
  })

  test('bytes and room follow every grant and its end; room never goes below 0', () => {
    const grants = new LeaseGrants(100, 60_000)
    assert.deepEqual([grants.bytes, grants.room], [0, 100])
    const a = grants.grant([], 70)
    // The caller checks room before granting: a grant past it is held and counted all the same.
    const b = grants.grant([], 50)
    assert.deepEqual([grants.bytes, grants.room], [120, 0])
    grants.release(a)
    assert.deepEqual([grants.bytes, grants.room], [50, 50])
    grants.release(b)
    assert.deepEqual([grants.bytes, grants.room], [0, 100])
  })

  test('ids are never reused: a released id stays unknown, and one never made is refused', () => {
    const grants = new LeaseGrants(100, 60_000)
    const seen = new Set<number>()
    for (let i = 0; i < 5; i++) {
      const id = grants.grant([], 1)
      assert.ok(!seen.has(id), `id ${id} given twice`)
      seen.add(id)
      assert.equal(grants.release(id), true)
    }
    for (const id of seen) assert.equal(grants.release(id), false)
    assert.equal(grants.release(0), false)
    assert.equal(grants.release(999), false)
    grants.close()
    grants.close()
    assert.equal(grants.bytes, 0)
  })

  test('a grant holds for GRANT_TTL_MS by default, and its timer does not keep the process alive', async () => {
    assert.equal(new LeaseGrants(1).ttl, GRANT_TTL_MS)
    const module = new URL('../../lib/server/lease-grants.js', import.meta.url).href
    const child = spawn(process.execPath, ['--input-type=module', '-e', `import { LeaseGrants } from ${JSON.stringify(module)}; new LeaseGrants(10).grant([{ release() {} }], 1)`], { stdio: 'ignore' })
    const exited = once(child, 'exit')
    const done = await within(exited, 5000)
    if (!done) child.kill('SIGKILL')
    assert.ok(done, `a process holding one grant did not exit within 5 s (the ttl is ${GRANT_TTL_MS} ms)`)
    assert.deepEqual(await exited, [0, null])
  })
})
