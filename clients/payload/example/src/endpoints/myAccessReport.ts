// GET /api/my-access-report?from=&to=&after=: "who has seen my record", the
// logged-in patient's report of every access to their submissions and
// consents, read from phi-gateway as that patient. Nothing is stored in
// Payload.
import type { Endpoint } from 'payload'
import { myAccessReport, NoUserTokenError, PayloadSDKError } from '@phi-gateway/payload'

const baseURL = process.env.PHI_GATEWAY_URL ?? 'http://127.0.0.1:8080/api'
const noStore = { 'Cache-Control': 'no-store' }

export const accessReport: Endpoint = {
  path: '/my-access-report',
  method: 'get',
  handler: async (req) => {
    const q = req.query ?? {}
    const after = Number(q.after)
    try {
      const report = await myAccessReport(
        req,
        { baseURL, cookiePrefix: req.payload.config.cookiePrefix },
        {
          from: typeof q.from === 'string' ? q.from : undefined,
          to: typeof q.to === 'string' ? q.to : undefined,
          after: Number.isInteger(after) && after > 0 ? after : undefined,
          limit: 50,
        },
      )
      return Response.json(report, { headers: noStore })
    } catch (e) {
      if (e instanceof NoUserTokenError) {
        return Response.json({ errors: [{ message: 'You must be logged in to make this request.' }] }, { status: 401, headers: noStore })
      }
      if (e instanceof PayloadSDKError) {
        return Response.json({ errors: e.errors }, { status: e.status, headers: noStore })
      }
      throw e
    }
  },
}
