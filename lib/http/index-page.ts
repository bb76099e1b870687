/**
 * A directory as a page: HTML whose links are relative (directories end in
 * '/'), which is what fsspec's HTTPFileSystem and wget -r follow, or JSON
 * for a client that asks for it.
 */
import type { Entry } from '../commands/ls.js'

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

function href(e: Entry): string {
  return encodeURIComponent(e.name) + (e.type === 'dir' ? '/' : '')
}

/** `shown`: the directory's URL path, decoded (for the title only). */
export function htmlIndex(shown: string, entries: Entry[]): string {
  const title = `Index of ${escapeHtml(shown)}`
  const rows = entries.map((e) => {
    const name = escapeHtml(e.name) + (e.type === 'dir' ? '/' : '')
    const size = e.size === undefined ? '' : ` ${e.size}`
    return `<li><a href="${escapeHtml(href(e))}">${name}</a>${size}</li>`
  })
  const up = shown === '/' ? [] : ['<li><a href="../">../</a></li>']
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${title}</title></head>\n<body><h1>${title}</h1>\n<ul>\n${[...up, ...rows].join('\n')}\n</ul>\n</body></html>\n`
}

export function jsonIndex(entries: Entry[]): string {
  return JSON.stringify({ entries }) + '\n'
}

/** The client prefers JSON (a plain Accept check: browsers and fsspec ask for HTML or anything). */
export function wantsJson(accept: string | undefined): boolean {
  return accept !== undefined && /application\/json/i.test(accept) && !/text\/html/i.test(accept)
}
