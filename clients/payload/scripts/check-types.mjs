// CI check: the committed openapi.json is the gateway's document, and the
// committed src/openapi.ts is what openapi-typescript makes of it.
//   node scripts/check-types.mjs PATH_TO_CURRENT_OPENAPI_JSON
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const current = process.argv[2]
if (!current) {
  console.error('usage: check-types.mjs CURRENT_OPENAPI_JSON')
  process.exit(2)
}
const normalise = (t) => JSON.stringify(JSON.parse(t), null, 2) + '\n'
const want = normalise(readFileSync(current, 'utf8'))
const have = readFileSync('openapi.json', 'utf8')
if (want !== have) {
  console.error('clients/payload/openapi.json is out of date: run `npm run refresh` (see README)')
  process.exit(1)
}
const dir = mkdtempSync(join(tmpdir(), 'phi-types-'))
const out = join(dir, 'openapi.ts')
execFileSync('npx', ['openapi-typescript', 'openapi.json', '--output', out], { stdio: 'ignore' })
if (readFileSync(out, 'utf8') !== readFileSync('src/openapi.ts', 'utf8')) {
  console.error('clients/payload/src/openapi.ts is out of date: run `npm run types`')
  process.exit(1)
}
console.log('ok: openapi.json and src/openapi.ts match the gateway')
