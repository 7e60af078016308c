// Rewrites openapi.json from a running gateway, then src/openapi.ts:
//   GATEWAY_URL=http://127.0.0.1:8080/api npm run refresh
// GATEWAY_URL is the API root (as for the contract tests); a URL ending in
// .json is taken as the document's own address.
import { writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const base = process.env.GATEWAY_URL
if (!base) {
  console.error('refresh: set GATEWAY_URL to the gateway API root, e.g. GATEWAY_URL=http://127.0.0.1:8080/api')
  process.exit(2)
}
const url = base.endsWith('.json') ? base : `${base.replace(/\/+$/, '')}/openapi.json`
const res = await fetch(url)
if (!res.ok) {
  console.error(`refresh: GET ${url} answered ${res.status}`)
  process.exit(1)
}
// The same normalisation as scripts/check-types.mjs.
const normalise = (t) => JSON.stringify(JSON.parse(t), null, 2) + '\n'
writeFileSync(join(root, 'openapi.json'), normalise(await res.text()))
console.log(`refresh: openapi.json from ${url}`)
execFileSync(process.execPath, [join(root, 'scripts/types.mjs')], { stdio: 'inherit' })
