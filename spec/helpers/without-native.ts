/**
 * Run code in a node process where native/shm.node cannot be loaded, as on a
 * host where it was not built: the paths the server takes without it.
 */
import { execFile } from 'node:child_process'

/** Loading the addon fails, as `require` of a file that is not there does. */
const HIDE_ADDON = `data:text/javascript,${encodeURIComponent(`
import Module from 'node:module'
const load = Module._load
Module._load = function (request, ...rest) {
  if (String(request).endsWith('shm.node')) throw Object.assign(new Error('Cannot find module ' + request), { code: 'MODULE_NOT_FOUND' })
  return load.call(this, request, ...rest)
}
`)}`

/** Run ES module `code` without the addon; resolves with its stdout, rejects if it fails or runs past 20 s. */
export function withoutNative(code: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', HIDE_ADDON, '--input-type=module', '-e', code], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { message: `${err.message}\n${stderr}` }))
      else resolve(stdout)
    })
  })
}
