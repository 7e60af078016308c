// CI check: the committed openapi.json is the gateway's document, and the
// committed src/openapi.ts is what `npm run types` makes of it.
//   node scripts/check-types.mjs PATH_TO_CURRENT_OPENAPI_JSON
// (PATH is taken from the current directory; the package's own files from
// the package, wherever this is run from.)
import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const current = process.argv[2]
if (!current) {
  console.error('usage: check-types.mjs CURRENT_OPENAPI_JSON')
  process.exit(2)
}
const normalise = (t) => JSON.stringify(JSON.parse(t), null, 2) + '\n'
const want = normalise(readFileSync(resolve(current), 'utf8'))
const have = readFileSync(join(root, 'openapi.json'), 'utf8')
if (want !== have) {
  console.error('clients/payload/openapi.json is out of date: run `npm run refresh` (see README)')
  process.exit(1)
}
const dir = mkdtempSync(join(tmpdir(), 'phi-types-'))
try {
  const out = join(dir, 'openapi.ts')
  execFileSync(process.execPath, [join(root, 'scripts/types.mjs'), '--output', out, '--quiet'], { stdio: 'inherit' })
  if (readFileSync(out, 'utf8') !== readFileSync(join(root, 'src/openapi.ts'), 'utf8')) {
    console.error('clients/payload/src/openapi.ts is out of date: run `npm run types`')
    process.exit(1)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
console.log('ok: openapi.json and src/openapi.ts match the gateway')
