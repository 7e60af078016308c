// A minimal Payload v3 app next to phi-gateway: its users live here, its
// patients' data in the gateway only (no collection here holds PHI). The
// `phiGateway` plugin registers the endpoints that read it as the logged-in
// user, checks the user collection at start, and ends a session at the
// gateway when the user logs out of Payload.
import { postgresAdapter } from '@payloadcms/db-postgres'
import { phiGateway } from '@phi-gateway/payload'
import { buildConfig } from 'payload'
import { Users } from './collections/Users.ts'

const required = (name: string): string => {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set (see examples/payload-app/README.md)`)
  return v
}

export const serverURL = process.env.PAYLOAD_PUBLIC_SERVER_URL ?? 'http://localhost:3000'

export default buildConfig({
  // The same secret as the gateway's PAYLOAD_SECRET: it verifies Payload's tokens with it.
  secret: required('PAYLOAD_SECRET'),
  serverURL,
  // The origins whose cookie-authenticated requests Payload honours; the
  // gateway is given the same list (PHI_CSRF_ORIGINS) for browsers that call it directly.
  csrf: [serverURL],
  cors: [serverURL],
  // Payload's own database (users only), never the gateway's.
  db: postgresAdapter({ pool: { connectionString: required('DATABASE_URI') } }),
  collections: [Users],
  plugins: [phiGateway({ baseURL: required('PHI_GATEWAY_URL') })],
  telemetry: false,
})
