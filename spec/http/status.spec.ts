/** The error codes as HTTP statuses: HTTP.md's table is the contract, read from the document itself. */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { type ErrorCode, ErrorCodes } from '../../lib/errors.js'
import { ERROR_HEADER, isTransient, statusOf } from '../../lib/http/status.js'

const HTTP_MD = readFileSync(new URL('../../../HTTP.md', import.meta.url), 'utf8')
const errors = HTTP_MD.slice(HTTP_MD.indexOf('## Errors'))
const CODES = Object.keys(ErrorCodes) as ErrorCode[]

/** `| \`ENOENT\`, \`ENOTDIR\` | 404 |` rows, and the status of `any other`. */
function documented(): { statuses: Map<string, number>; other: number } {
  const statuses = new Map<string, number>()
  let other = NaN
  for (const [, codes, status] of errors.matchAll(/^\| (.+?) \| (\d{3}) \|$/gm)) {
    if (codes === 'any other') other = Number(status)
    else for (const [, code] of codes.matchAll(/`(E[A-Z]+)`/g)) statuses.set(code, Number(status))
  }
  return { statuses, other }
}

describe('statusOf', () => {
  test('gives each code the status HTTP.md\'s table gives it, and any other code its "any other" status', () => {
    const { statuses, other } = documented()
    assert.ok(statuses.size >= 10, `read ${statuses.size} rows from HTTP.md`)
    assert.equal(other, 500)
    for (const code of statuses.keys()) assert.ok(CODES.includes(code as ErrorCode), `HTTP.md names ${code}, which is no error code`)
    for (const code of CODES) assert.equal(statusOf(code), statuses.get(code) ?? other, code)
  })

  test('a code outside the vocabulary is 500', () => {
    assert.equal(statusOf('EWHATEVER' as ErrorCode), 500)
  })
})

describe('isTransient', () => {
  test('holds for exactly the codes HTTP.md answers with Retry-After', () => {
    const sentence = /Codes that are worth retrying soon \(([^)]*)\)\s+come with\s+`Retry-After`/.exec(errors)
    assert.ok(sentence, 'HTTP.md names the codes that come with Retry-After')
    const named = [...sentence[1].matchAll(/`(E[A-Z]+)`/g)].map((m) => m[1]).sort()
    assert.deepEqual(CODES.filter(isTransient).sort(), named)
  })

  test('every transient code is a 503', () => {
    for (const code of CODES.filter(isTransient)) assert.equal(statusOf(code), 503, code)
  })
})

test('the error code goes in the header HTTP.md names, as Node spells header names', () => {
  assert.match(HTTP_MD, /`X-Cacheserv-Error` header/)
  assert.equal(ERROR_HEADER, 'x-cacheserv-error')
})
