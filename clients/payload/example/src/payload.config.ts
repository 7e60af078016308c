// The parts of a Payload config that matter to the gateway (a real config
// also names its database adapter, editor, admin settings ...).
import { buildConfig } from 'payload'
import { Users } from './collections/Users'
import { accessReport } from './endpoints/myAccessReport'
import { mySubmissions } from './endpoints/mySubmissions'

export default buildConfig({
  // The same secret as the gateway's PAYLOAD_SECRET: it verifies Payload's tokens with it.
  secret: process.env.PAYLOAD_SECRET!,
  // The origins whose cookie-authenticated requests Payload honours; give
  // the gateway the same list (PHI_CSRF_ORIGINS) if browsers call it directly.
  csrf: [process.env.NEXT_PUBLIC_SERVER_URL ?? 'http://localhost:3000'],
  collections: [
    Users,
    // No collection for submissions, consents or anything else holding PHI:
    // they live in the gateway only.
  ],
  endpoints: [mySubmissions, accessReport],
  db: undefined as never, // your adapter here
})
