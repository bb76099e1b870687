// Bundles the client CLI into one CommonJS file, dist/bin/cacheserv-pipe-client.cjs,
// which is what the `cacheserv-pipe-client` bin runs. Runs after tsc, on its output.
//
// Why: `read x | head` is run in loops, so start-up is the client's budget. Node 20's
// ESM loader spends ~1 ms per module (resolve, read, link) and ~25 ms on the client's
// 24; one CommonJS file compiles in about 3 ms (both measured with node --cpu-prof).
//
// What stays out: every dynamic import() (help, sizes, tar, progress bars, the fault
// injector) is left as a file loaded on demand, its path rewritten to point from
// dist/bin to the module tsc wrote. Such a module gets its own copies of what it imports
// (errors.js, args.js); nothing relies on their identity: errors are told apart by code.
// Packages loaded with createRequire (debug) stay runtime requires.
import { build } from 'esbuild'
import { writeFile } from 'node:fs/promises'
import { dirname, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const entry = resolve(root, 'dist/bin/cacheserv-pipe-client.js')
const outfile = resolve(root, 'dist/bin/cacheserv-pipe-client.cjs')

/** Leaves dynamic imports of our own modules unbundled, addressed from the output file. */
const lazyImportsStayFiles = {
  name: 'lazy-imports-stay-files',
  setup(b) {
    b.onResolve({ filter: /^\./, namespace: 'file' }, (args) => {
      if (args.kind !== 'dynamic-import') return undefined
      const target = relative(dirname(outfile), resolve(args.resolveDir, args.path))
      return { path: target.startsWith('.') ? target : `./${target}`, external: true }
    })
  },
}

const result = await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // CommonJS has no import.meta. The client uses import.meta.url only for createRequire, for
  // which the bundle's own URL resolves the same packages; a URL relative to a source file would
  // not (it would point into dist/bin). The banner comes before esbuild's "use strict", so it
  // says so itself: the bundle must run in strict mode, as the modules it came from do.
  define: { 'import.meta.url': '__bundleUrl' },
  banner: { js: "'use strict'; const __bundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
  plugins: [lazyImportsStayFiles],
})
// A warning (an import.meta use other than the URL, say) means the bundle may not behave as the modules do.
if (result.warnings.length > 0) {
  console.error(`bundle-client: ${result.warnings.length} warning(s) above; refusing the bundle`)
  process.exit(1)
}
// What went in: spec/cli/client-bundle.spec.ts checks it holds no server code and no package.
await writeFile(`${outfile}.meta.json`, JSON.stringify(result.metafile, null, 1))
