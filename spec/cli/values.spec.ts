/** Option values both CLIs parse: sizes, counts, seconds, modes, ports. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { formatSize, parseCount, parseOctal, parsePort, parseSeconds, parseSize } from '../../lib/cli/values.js'

const GiB = 2 ** 30

describe('parseSize', () => {
  it('reads every spelling of a unit as a power of 1024, never as bits', () => {
    for (const s of ['4G', '4g', '4GB', '4Gb', '4gb', '4GiB', '4gib', '4 GiB', ' 4G ']) assert.equal(parseSize(s), 4 * GiB, s)
    assert.equal(parseSize('64KiB'), 65536)
    assert.equal(parseSize('64kb'), 65536)
    assert.equal(parseSize('512MiB'), 512 * 2 ** 20)
    assert.equal(parseSize('1T'), 2 ** 40)
    assert.equal(parseSize('4096'), 4096)
    assert.equal(parseSize('4096B'), 4096)
    assert.equal(parseSize('4096b'), 4096)
    assert.equal(parseSize('0'), 0)
  })

  it('takes fractions of a unit, rounding down to a byte', () => {
    assert.equal(parseSize('1.5G'), 1.5 * GiB)
    assert.equal(parseSize('.5K'), 512)
    assert.equal(parseSize('0.1K'), 102)
  })

  it('refuses what is not a size, with the value in the message', () => {
    for (const s of ['', ' ', 'G', 'abc', '-1', '-1K', '1,5K', '1.5.2K', '4Gib2', '4 G B', '1e3', '0x10', '4X', '4iB', 'Infinity', 'NaN']) {
      assert.throws(() => parseSize(s), (err: Error) => err.message.startsWith(`not a size: ${JSON.stringify(s)} `), s)
    }
  })

  it('refuses a fraction of a byte and a size past the safe integers', () => {
    assert.throws(() => parseSize('2.7'), /not a whole number of bytes: "2.7"/)
    assert.throws(() => parseSize('2.5B'), /not a whole number of bytes/)
    assert.throws(() => parseSize('99999999999999999999'), /too large a size/)
    assert.throws(() => parseSize('9000T'), /too large a size/)
    assert.equal(parseSize('8000T'), 8000 * 2 ** 40)
  })
})

describe('formatSize', () => {
  it('uses the largest unit that divides the size exactly', () => {
    assert.equal(formatSize(GiB), '1GiB')
    assert.equal(formatSize(256 * 1024), '256KiB')
    assert.equal(formatSize(1536 * 2 ** 20), '1536MiB')
    assert.equal(formatSize(1000), '1000')
    assert.equal(formatSize(0), '0')
  })

  it('round-trips through parseSize', () => {
    for (const n of [0, 1, 1023, 1024, 65536, 3 * GiB, 5 * 2 ** 40, 123_456_789]) assert.equal(parseSize(formatSize(n)), n)
  })
})

describe('parseCount', () => {
  it('takes plain digits up to the safe integers, and sizes with units', () => {
    assert.equal(parseCount('123'), 123)
    assert.equal(parseCount(String(Number.MAX_SAFE_INTEGER)), Number.MAX_SAFE_INTEGER)
    assert.throws(() => parseCount('9007199254740993'), /too large/)
    assert.equal(parseCount('2K'), 2048)
    assert.throws(() => parseCount('x'), /not a size/)
  })
})

describe('parseSeconds', () => {
  it('takes decimal seconds, fractions allowed', () => {
    assert.equal(parseSeconds('30'), 30)
    assert.equal(parseSeconds('0.5'), 0.5)
    assert.equal(parseSeconds('.25'), 0.25)
    assert.equal(parseSeconds('2.'), 2)
    assert.equal(parseSeconds('0'), 0)
  })

  it('refuses other notations of a number, and what is not one', () => {
    for (const s of ['', ' ', '-1', '0x10', '1e2', 'Infinity', 'NaN', '1s', '1,5', '+3']) {
      assert.throws(() => parseSeconds(s), /not a number of seconds/, s)
    }
  })
})

describe('parseOctal', () => {
  it('takes three octal digits, with or without a leading 0', () => {
    assert.equal(parseOctal('600'), 0o600)
    assert.equal(parseOctal('0660'), 0o660)
    for (const s of ['6', '800', '06600', 'rw', '-600']) assert.throws(() => parseOctal(s), /not an octal file mode/, s)
  })
})

describe('parsePort', () => {
  it('takes 0 to 65535 in digits', () => {
    assert.equal(parsePort('0'), 0)
    assert.equal(parsePort('65535'), 65535)
    for (const s of ['65536', '-1', '0x50', '80.5', '', 'http']) assert.throws(() => parsePort(s), /not a port number/, s)
  })
})
