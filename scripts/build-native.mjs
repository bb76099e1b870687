// Builds native/shm.node, the shared-memory block store's two system calls,
// with the node-gyp npm ships. Without it (no compiler, no Node headers) the
// server still runs: blocks stay on the heap and same-host clients read over
// the socket. So a failed build warns and exits 0.
import { spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const native = join(dirname(fileURLToPath(import.meta.url)), '..', 'native')
const built = join(native, 'build', 'Release', 'shm.node')
const sources = ['shm.cc', 'dirs.cc', 'binding.gyp'].map((f) => join(native, f))

if (existsSync(built) && sources.every((s) => statSync(built).mtimeMs >= statSync(s).mtimeMs)) process.exit(0)

const gyp = [process.env.npm_config_node_gyp, join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')].find(
  (p) => p && existsSync(p),
)
if (!gyp) warn('node-gyp not found')
else {
  // Node's own headers when installed beside it (as npm's `nodedir` setting would say), else node-gyp's download.
  const prefix = join(dirname(process.execPath), '..')
  const nodedir = !process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : []
  const run = spawnSync(process.execPath, [gyp, 'rebuild', '--directory', native, ...nodedir], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' })
  if (run.status !== 0 || !existsSync(built)) warn(`node-gyp failed:\n${(run.stderr ?? '').split('\n').slice(-12).join('\n')}`)
}

function warn(why) {
  console.warn(`cacheserv-pipe: the shared-memory store is not built (${why}); blocks stay on the heap and local clients read over the socket.`)
}
