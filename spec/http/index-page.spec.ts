/**
 * A directory as a page: HTML with relative links (directories ending in
 * '/'), every name escaped, or JSON for a client that asks for it.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Entry } from '../../lib/commands/ls.js'
import { htmlIndex, jsonIndex, wantsJson } from '../../lib/http/index-page.js'
import { writeFile } from '../helpers/fixtures.js'
import { curl, startGateway } from '../helpers/http.js'
import { assertSameBytes } from '../helpers/suite.js'

/** Names a browser, fsspec or wget must get back from a link as they are. */
const AWKWARD = ['a b.txt', '#hash.txt', 'q?x=1.txt', '100%.txt', 'ünï 名.txt', `<b>&"it's".txt`, 'semi;colon+plus=.txt']

const hrefs = (html: string) => [...html.matchAll(/<a href="([^"]*)">/g)].map((m) => m[1])
const unescapeHtml = (s: string) => s.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)))

describe('htmlIndex', () => {
  test('a page titled with the directory, a link up, then each entry with its size when known', () => {
    const entries: Entry[] = [
      { name: 'deeper', type: 'dir' },
      { name: 'a.txt', type: 'file', size: 12 },
      { name: 'fifo', type: 'other' },
    ]
    assert.equal(
      htmlIndex('/sub/', entries),
      [
        '<!DOCTYPE html>',
        '<html><head><meta charset="utf-8"><title>Index of /sub/</title></head>',
        '<body><h1>Index of /sub/</h1>',
        '<ul>',
        '<li><a href="../">../</a></li>',
        '<li><a href="deeper/">deeper/</a></li>',
        '<li><a href="a.txt">a.txt</a> 12</li>',
        '<li><a href="fifo">fifo</a></li>',
        '</ul>',
        '</body></html>',
        '',
      ].join('\n'),
    )
  })

  test('the root has no link up; an empty directory has an empty list', () => {
    const page = htmlIndex('/', [])
    assert.doesNotMatch(page, /\.\.\//)
    assert.match(page, /<ul>\n\n<\/ul>/)
  })

  test('names are escaped as text and percent-encoded in links, which resolve back to the names', () => {
    const entries: Entry[] = AWKWARD.map((name) => ({ name, type: 'file' }))
    const page = htmlIndex('/<x> & "y"/', entries)
    assert.match(page, /<title>Index of \/&#60;x&#62; &#38; &#34;y&#34;\/<\/title>/)
    assert.doesNotMatch(page.replace(/<\/?(html|head|meta|title|body|h1|ul|li|a)\b[^>]*>|<!DOCTYPE html>/g, ''), /[<>"]/, 'no markup but the page\'s own')
    const links = hrefs(page).slice(1)
    assert.equal(links.length, AWKWARD.length)
    for (const [i, href] of links.entries()) {
      const raw = unescapeHtml(href)
      assert.doesNotMatch(raw, /[ #?]/, `${raw}: a space, # or ? would end or split the path`)
      const resolved = new URL(raw, 'http://h/dir/')
      assert.equal(decodeURIComponent(resolved.pathname), `/dir/${AWKWARD[i]}`)
      assert.equal(resolved.search + resolved.hash, '')
    }
  })
})

describe('jsonIndex', () => {
  test('is the entries as `ls` gives them, one JSON object and a newline', () => {
    const entries: Entry[] = [{ name: 'd', type: 'dir' }, { name: 'é"x', type: 'file', size: 3 }]
    const text = jsonIndex(entries)
    assert.ok(text.endsWith('}\n'))
    assert.deepEqual(JSON.parse(text), { entries })
  })
})

describe('wantsJson', () => {
  test('only for a client that asks for JSON and not for HTML', () => {
    const cases: [string | undefined, boolean][] = [
      ['application/json', true],
      ['Application/JSON; charset=utf-8', true],
      ['application/json;q=0.9, */*;q=0.1', true],
      [undefined, false],
      ['', false],
      ['*/*', false],
      ['text/html', false],
      ['text/html,application/xhtml+xml,application/json;q=0.9', false],
    ]
    for (const [accept, json] of cases) assert.equal(wantsJson(accept), json, String(accept))
  })
})

describe('a directory page served by the gateway', () => {
  test('curl following each link of the page gets each file, however awkward its name', async (t) => {
    const g = await startGateway(t)
    const files = new Map(AWKWARD.map((name, i) => [name, writeFile(g.root, `odd dir/${name}`, `file ${i}\n`)]))
    writeFile(g.root, 'odd dir/sub #1/inner.txt', 'inner\n')
    const pageUrl = `${g.base}/odd%20dir/`
    const page = await curl(['-f', pageUrl])
    assert.equal(page.code, 0, page.stderr)
    const links = hrefs(page.stdout.toString()).map((h) => new URL(unescapeHtml(h), pageUrl).href)
    assert.equal(links.length, files.size + 2, 'up, the subdirectory and every file')
    for (const [name, data] of files) {
      const link = links.find((l) => decodeURIComponent(new URL(l).pathname) === `/odd dir/${name}`)
      assert.ok(link, `a link to ${name}`)
      const r = await curl(['-f', '--globoff', link])
      assert.equal(r.code, 0, `${link}: ${r.stderr}`)
      assertSameBytes(r.stdout, data, name)
    }
    const sub = links.find((l) => l.endsWith('/sub%20%231/'))
    assert.ok(sub, links.join('\n'))
    const inner = await curl(['-f', sub])
    assert.match(inner.stdout.toString(), /<a href="inner\.txt">inner\.txt<\/a> 6/)
  })
})
