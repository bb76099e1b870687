/** The command line of `cacheserv-pipe-client`: global options and commands, as a table for ./args.js. */
import { DEFAULT_ADDRESS, parseAddress } from '../address.js'
import type { CorruptMode, CorruptOptions } from '../stages/corrupt.js'
import type { ArgumentSpec, ProgramSpec } from './args.js'
import { parseCount } from './values.js'

export const NAME = 'cacheserv-pipe-client'

const FAULT_MODES = ['flip', 'drop', 'duplicate', 'garbage', 'mixed']

function parseFaults(value: string): CorruptOptions {
  const [rate, mode = 'mixed', seed = '1'] = value.split(':')
  const r = Number(rate)
  if (!(r >= 0 && r <= 1) || !FAULT_MODES.includes(mode) || !/^\d+$/.test(seed)) {
    throw new Error(`expected RATE[:MODE[:SEED]] with RATE from 0 to 1 and MODE one of ${FAULT_MODES.join(', ')}, got ${JSON.stringify(value)}`)
  }
  return { rate: r, mode: mode as CorruptMode, seed: Number(seed) }
}

/** Checked here, so that a typo is a usage error (exit 2), not a failed connection. */
function parseServer(value: string): string {
  parseAddress(value)
  return value
}

/** What every command gets from the global options. */
export interface GlobalOptions {
  server?: string
  token?: string
  injectFaults?: CorruptOptions
}

const FILE: ArgumentSpec = { name: 'file', description: 'path relative to the served root', required: true }
const PATH: ArgumentSpec = { name: 'path', description: 'file or directory relative to the served root' }

export const CLIENT = {
  name: NAME,
  description: 'Read files from a cacheserv-pipe server, and steer its cache.',
  options: [
    { flags: '--server <addr>', description: `server address: tcp://HOST:PORT, HOST:PORT or unix:/path (env CACHESERV_SERVER, else ${DEFAULT_ADDRESS})`, parse: parseServer },
    { flags: '--token <token>', description: 'token for a server that needs one (env CACHESERV_TOKEN)' },
    {
      flags: '--inject-faults <rate[:mode[:seed]]>',
      description: 'damage received bytes on purpose (faults per byte; mode flip|drop|duplicate|garbage|mixed) to watch the NACK path repair them; prints a summary on stderr',
      parse: parseFaults,
    },
  ],
  commands: [
    {
      name: 'read',
      description: 'write exactly the bytes of FILE (or a range of it) to stdout',
      arguments: [FILE],
      options: [
        { flags: '--offset <n>', description: 'first byte to read', parse: parseCount },
        { flags: '--length <n>', description: 'bytes to read (clipped at the end of the file)', parse: parseCount },
      ],
    },
    {
      name: 'ls',
      description: 'list a directory, one entry a line, directories ending in /',
      arguments: [{ name: 'dir', description: 'directory relative to the served root', default: '' }],
      options: [{ flags: '--long', description: 'put each file\'s size in bytes before its name, tab-separated' }],
    },
    {
      name: 'tree',
      description: 'list every file under a directory, depth first in name order: size in bytes, a tab, the path',
      arguments: [{ name: 'dir', description: 'directory relative to the served root (default: everything)', default: '' }],
      options: [
        { flags: '--suffix <s>', description: 'only names ending with s (e.g. .jpg)' },
        { flags: '--json', description: 'one JSON object {"path","size"} a line instead' },
      ],
    },
    { name: 'stat', description: 'print size, mtime and cache state of FILE as JSON', arguments: [FILE], options: [] },
    {
      name: 'stats',
      description: "print the server's counters: cache use, hits and misses, bytes served, NACKs",
      arguments: [],
      options: [{ flags: '--json', description: 'print JSON instead' }],
    },
    {
      name: 'warm',
      description: 'load a file or a whole tree into the cache (a progress bar on a terminal, a summary line at the end)',
      arguments: [{ ...PATH, default: '' }],
      options: [{ flags: '--list <file>', description: 'load exactly the paths listed in this file, one a line, in that order ("-" for stdin)' }],
    },
    { name: 'evict', description: 'drop a file or a tree from the cache; without a path, everything', arguments: [PATH], options: [] },
    { name: 'pin', description: 'keep a file or a tree in the cache whatever the eviction policy does (more than fits is ENOSPC, and pins nothing)', arguments: [{ ...PATH, required: true }], options: [] },
    { name: 'unpin', description: 'let pinned files at or under a path be evicted again; without a path, every pinned file', arguments: [PATH], options: [] },
    {
      name: 'tar',
      description: 'write files as a POSIX tar stream to stdout, in order (a directory tree, or the paths listed in a file), ending with a manifest member when complete',
      arguments: [{ name: 'dir', description: 'directory relative to the served root (default: everything)', default: '' }],
      options: [
        { flags: '--list <file>', description: 'read the paths to archive from this file, one a line ("-" for stdin); archiving starts with the first path' },
        { flags: '--no-manifest', description: 'write a plain archive, without the final .cacheserv-manifest.json member that marks it complete' },
      ],
    },
    {
      name: 'write',
      description: 'write stdin to FILE on the server, atomically (the server must run with --writable)',
      arguments: [{ ...FILE, description: 'path relative to the served root; its directory must exist' }],
      options: [],
    },
  ],
} as const satisfies ProgramSpec

export type CommandName = (typeof CLIENT.commands)[number]['name']
