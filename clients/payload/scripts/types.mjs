// src/openapi.ts from openapi.json, with openapi-typescript:
//   node scripts/types.mjs [--output FILE]     (npm run types)
//
// One correction is made on the way, and said out loud: OpenAPI requires
// every operationId to be unique, and the gateway's document repeats them
// across collections (`list`, `get`, `create`, ... for practitioners, herbs
// and symptom-submissions alike: the handlers share names, and utoipa uses
// the function's name). openapi-typescript then emits
// `operations.list` three times and the types do not compile. Until the
// gateway names them itself, a repeated id gets its tag as a prefix
// (`herbs_list`, like the gateway's own `consents_list`). With unique ids
// in the document this changes nothing.
import { existsSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const at = args.indexOf('--output')
const output = at >= 0 ? args[at + 1] : join(root, 'src/openapi.ts')
const quiet = args.includes('--quiet')

const doc = JSON.parse(readFileSync(join(root, 'openapi.json'), 'utf8'))
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']
const ops = []
for (const [path, item] of Object.entries(doc.paths ?? {})) {
  for (const m of METHODS) if (item[m]?.operationId) ops.push({ path, method: m, op: item[m] })
}
const seen = new Map()
for (const o of ops) seen.set(o.op.operationId, (seen.get(o.op.operationId) ?? 0) + 1)
const repeated = [...seen].filter(([, n]) => n > 1).map(([id]) => id)
if (repeated.length) {
  for (const o of ops) {
    if (!repeated.includes(o.op.operationId)) continue
    const prefix = (o.op.tags?.[0] ?? o.path.split('/').filter(Boolean)[1] ?? 'op').replace(/[^A-Za-z0-9]+/g, '_')
    o.op.operationId = `${prefix}_${o.op.operationId}`
  }
  const again = new Set()
  for (const o of ops) {
    if (again.has(o.op.operationId)) {
      console.error(`types: operationId ${o.op.operationId} is still repeated after prefixing; fix the gateway's document`)
      process.exit(1)
    }
    again.add(o.op.operationId)
  }
  if (!quiet) {
    console.error(
      `types: the gateway's document repeats operationIds (${repeated.join(', ')}); ` +
        'OpenAPI requires them unique. Prefixed with their tag here; fix the gateway (see scripts/types.mjs).',
    )
  }
}

const dir = mkdtempSync(join(tmpdir(), 'phi-openapi-'))
try {
  const input = join(dir, 'openapi.json')
  writeFileSync(input, JSON.stringify(doc))
  const cli = join(root, 'node_modules/openapi-typescript/bin/cli.js')
  if (!existsSync(cli)) {
    console.error('types: openapi-typescript is not installed: run `npm ci` in clients/payload first')
    process.exit(2)
  }
  execFileSync(process.execPath, [cli, input, '--output', output], {
    stdio: quiet ? 'ignore' : ['ignore', 'inherit', 'inherit'],
  })
} finally {
  rmSync(dir, { recursive: true, force: true })
}
