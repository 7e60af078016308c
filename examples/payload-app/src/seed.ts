// Demo users for the example app (compose.yaml runs it before the server):
// an admin, a practitioner and a patient, made once through Payload's Local
// API, with the password DEMO_PASSWORD (development only).
import { getPayload } from 'payload'
import config from './payload.config.ts'

const password = process.env.DEMO_PASSWORD ?? 'demo-password'
const payload = await getPayload({ config })
const demo: [string, string[]][] = [
  ['admin@example.org', ['admin']],
  ['practitioner@example.org', ['practitioner']],
  ['patient@example.org', []],
]
for (const [email, roles] of demo) {
  const found = await payload.find({ collection: 'users', where: { email: { equals: email } }, limit: 1 })
  if (found.docs.length) continue
  const u = await payload.create({ collection: 'users', data: { email, password, roles } as never })
  console.log(`seed: ${email} is users:${u.id}${roles.length ? ` (${roles.join(', ')})` : ''}`)
}
process.exit(0)
