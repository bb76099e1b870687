/**
 * RequestControl: auth, cancel and nack carried out on a scheduler's real
 * queues (Jobs, ParkedRequests, Resends); what the scheduler is asked to do
 * is recorded.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { CommandSpec } from '../../lib/commands/context.js'
import type { CacheservError } from '../../lib/errors.js'
import { Inbox } from '../../lib/stages/inbox.js'
import type { Part } from '../../lib/stages/items.js'
import { Job } from '../../lib/stages/job.js'
import { Jobs } from '../../lib/stages/jobs.js'
import { ParkedRequests } from '../../lib/stages/parked.js'
import { RequestControl, type Scheduler } from '../../lib/stages/request-control.js'
import { Resends } from '../../lib/stages/resends.js'

const reader: CommandSpec = { run: async function* () {} }

function idle(id: number, inbox: Inbox | null = null): Job {
  async function* gen(): AsyncGenerator<Part, void, void> {
    yield { kind: 'end', body: {} }
  }
  return new Job(id, gen(), { inbox, onSettled: () => {} })
}

function setup({ token, slots = 4 }: { token?: string; slots?: number } = {}) {
  const jobs = new Jobs()
  const parked = new ParkedRequests()
  const resends = new Resends({ pageSize: 8192, running: (id) => jobs.has(id) })
  const log: string[] = []
  const replies: { id: number; code: string; message: string; attempt?: number }[] = []
  const answers: { id: number; body: unknown }[] = []
  const scheduler: Scheduler = {
    jobs,
    parked,
    resends,
    reply: (id, err: CacheservError, attempt) => void replies.push({ id, code: err.code, message: err.message, attempt }),
    answer: (id, body) => void answers.push({ id, body }),
    hasSlot: () => jobs.running < slots,
    resend: (id, _record, at) => void log.push(`resend ${id} from ${at.seq}/${at.offset} as ${at.resync}`),
    finish: (job, err) => {
      jobs.drop(job)
      replies.push({ id: job.id, code: err.code, message: err.message })
    },
    release: () => void log.push('release'),
    close: () => void log.push('close'),
  }
  return { control: new RequestControl(scheduler, token), jobs, parked, resends, log, replies, answers }
}

describe('RequestControl: auth', () => {
  test('with no token the connection is open, and an auth is refused without ending it', () => {
    const { control, replies, log } = setup()
    assert.equal(control.authenticated, true)
    control.authenticate(1, 'x')
    assert.equal(replies[0].code, 'EBADREQ')
    assert.match(replies[0].message, /this server needs no token/)
    assert.deepEqual(log, [])
  })

  test('the right token opens the connection with a RESULT; a second auth is refused', () => {
    const { control, answers, replies } = setup({ token: 's3cret' })
    assert.equal(control.authenticated, false)
    control.authenticate(1, 's3cret')
    assert.equal(control.authenticated, true)
    assert.deepEqual(answers, [{ id: 1, body: { auth: 'ok' } }])
    control.authenticate(2, 's3cret')
    assert.match(replies[0].message, /authenticated already/)
  })

  test('a wrong or missing token is EAUTH on id 0, and the connection closes', () => {
    for (const [token, why] of [['nope', 'the server refused the token'], [undefined, 'auth without a token']] as const) {
      const { control, replies, log } = setup({ token: 's3cret' })
      control.authenticate(1, token)
      assert.deepEqual(replies, [{ id: 0, code: 'EAUTH', message: why, attempt: undefined }])
      assert.deepEqual(log, ['close'])
      assert.equal(control.authenticated, false)
    }
  })
})

describe('RequestControl: refuse', () => {
  test('an error naming an open request goes out on id 0, so that request runs on', () => {
    const { control, jobs, replies } = setup()
    jobs.add(idle(5))
    control.refuse(5, { code: 'EBADREQ', message: 'bad line' } as CacheservError)
    control.refuse(6, { code: 'EBADREQ', message: 'bad line' } as CacheservError)
    assert.deepEqual(
      replies.map((r) => [r.id, r.message]),
      [
        [0, 'request 5: bad line'],
        [6, 'bad line'],
      ],
    )
  })
})

describe('RequestControl: nack', () => {
  test('a running request is stopped and resent from the verified point', () => {
    const { control, jobs, resends, log } = setup()
    resends.begin(1, reader, { path: 'f' })
    resends.sent(1, 50_000)
    jobs.add(idle(1))
    control.nack(1, { seq: 3, offset: 24_576, resync: 2 })
    assert.equal(jobs.has(1), false, 'the old job is gone')
    assert.deepEqual(log, ['resend 1 from 3/24576 as 2'])
    assert.equal(resends.attempts.get(1), 2)
  })

  test('a finished request waits for a slot when none is free', () => {
    const { control, jobs, parked, resends, log } = setup({ slots: 1 })
    resends.begin(1, reader, { path: 'f' })
    jobs.add(idle(2))
    control.nack(1, { seq: 0, offset: 0, resync: 1 })
    assert.deepEqual(log, [])
    assert.deepEqual(parked.take(1)?.resume, { seq: 0, offset: 0, resync: 1 })
  })

  test('a request parked before it started keeps its place and starts as that resend', () => {
    const { control, parked, log } = setup()
    parked.push({ id: 1, spec: reader, req: { id: 1, op: 'read', args: { path: 'f' } } })
    control.nack(1, { seq: 0, offset: 0, resync: 4 })
    assert.equal(parked.take(1)?.resync, 4)
    assert.deepEqual(log, [])
  })

  test('an upload is not resent: EBADREQ, and it runs on', () => {
    const { control, jobs, replies } = setup()
    jobs.add(idle(1, new Inbox()))
    control.nack(1, { seq: 0, offset: 0, resync: 1 })
    assert.equal(jobs.has(1), true)
    assert.equal(replies[0].code, 'EBADREQ')
    assert.equal(replies[0].id, 0, 'on id 0: the upload is open')
  })

  test('an unknown request: ECORRUPT in the NACK\'s epoch, and the scheduler goes on', () => {
    const { control, replies, log } = setup()
    control.nack(9, { seq: 0, offset: 0, resync: 3 })
    assert.deepEqual(replies.map((r) => [r.id, r.code, r.attempt]), [[9, 'ECORRUPT', 3]])
    assert.deepEqual(log, ['release'])
  })
})

describe('RequestControl: cancel', () => {
  test('a parked request is answered ECANCELED (in its NACK\'s epoch) and forgotten', () => {
    const { control, parked, resends, replies, log } = setup()
    resends.begin(1, reader, { path: 'f' })
    parked.push({ id: 1, spec: reader, resume: { seq: 2, offset: 10, resync: 6 } })
    control.cancel(1)
    assert.deepEqual(replies.map((r) => [r.id, r.code, r.attempt]), [[1, 'ECANCELED', 6]])
    assert.equal(resends.get(1), undefined, 'a later NACK of it is refused')
    assert.deepEqual(log, ['release'])
  })

  test('a running request is finished with ECANCELED', () => {
    const { control, jobs, replies } = setup()
    jobs.add(idle(1))
    control.cancel(1)
    assert.equal(jobs.has(1), false)
    assert.deepEqual(replies.map((r) => [r.id, r.code]), [[1, 'ECANCELED']])
  })

  test('a running upload is asked to stop and answers for itself', () => {
    const { control, jobs, replies } = setup()
    const upload = idle(1, new Inbox())
    jobs.add(upload)
    control.cancel(1)
    assert.equal(jobs.has(1), true, 'it answers for itself')
    assert.deepEqual(replies, [])
  })

  test('a finished request: nothing happens', () => {
    const { control, replies, log } = setup()
    control.cancel(3)
    assert.deepEqual(replies, [])
    assert.deepEqual(log, [])
  })
})
