// GET /api/my-submissions?page=1: the logged-in user's own symptom
// submissions, read from phi-gateway as that user. Nothing is stored in
// Payload: no collection, no hook, no cache; the answer goes straight back
// to the user who asked.
import type { Endpoint } from 'payload'
import { gatewayFor, NoUserTokenError, PayloadSDKError } from '@phi-gateway/payload'

// The gateway's API root, reachable from the Payload server only.
const baseURL = process.env.PHI_GATEWAY_URL ?? 'http://127.0.0.1:8080/api'

const noStore = { 'Cache-Control': 'no-store' }

export const mySubmissions: Endpoint = {
  path: '/my-submissions',
  method: 'get',
  handler: async (req) => {
    let gateway
    try {
      // The user's own token (Authorization header or payload-token cookie),
      // never a service token: the gateway's row-level security sees this user.
      gateway = gatewayFor(req, {
        baseURL,
        cookiePrefix: req.payload.config.cookiePrefix,
        // The gateway puts our request id in its audit entry beside its own.
        headers: { 'X-Request-Id': req.headers.get('x-request-id') ?? crypto.randomUUID() },
      })
    } catch (e) {
      if (e instanceof NoUserTokenError) {
        return Response.json({ errors: [{ message: 'You must be logged in to make this request.' }] }, { status: 401, headers: noStore })
      }
      throw e
    }

    const page = Number(req.query?.page ?? 1)
    try {
      const submissions = await gateway.find({
        collection: 'symptom-submissions',
        where: { status: { not_equals: 'archived' } },
        sort: ['-createdAt'],
        limit: 10,
        page: Number.isInteger(page) && page > 0 ? page : 1,
        // Only what this page shows is decrypted (and named in the audit entry).
        select: { status: true, symptoms: true, practitionerId: true, createdAt: true },
        // The practitioner's public directory entry instead of its id.
        depth: 1,
      })
      return Response.json(submissions, { headers: noStore })
    } catch (e) {
      if (e instanceof PayloadSDKError) {
        // The gateway's own status and Payload-shaped errors (never log the body: it may hold PHI).
        req.payload.logger.warn({ msg: 'phi-gateway refused', status: e.status })
        return Response.json({ errors: e.errors }, { status: e.status, headers: noStore })
      }
      throw e
    }
  },
}
