/**
 * phi-gateway from a Payload CMS v3 app.
 *
 * `gatewayFor(req)` returns Payload's own REST client (`PayloadSDK`) pointed
 * at the gateway, sending the logged-in user's own token: the gateway's
 * row-level security then sees the real user. It never uses a shared admin
 * token, and it refuses to make a client for a request without one.
 *
 * PHI must not pass through Payload's own collections or hooks: Payload would
 * keep copies (versions, drafts, logs). Read and write it through the gateway
 * from server code, as in `example/`.
 */
import { PayloadSDK } from '@payloadcms/sdk'

export type { components, operations, paths } from './openapi.js'
import type { components } from './openapi.js'

/** The gateway's documents and inputs, generated from its OpenAPI document. */
export type Practitioner = components['schemas']['PractitionerDoc']
export type PractitionerFields = components['schemas']['PractitionerFields']
export type Herb = components['schemas']['HerbDoc']
export type HerbFields = components['schemas']['HerbFields']
export type SymptomSubmission = components['schemas']['SubmissionDoc']
export type SymptomSubmissionFields = components['schemas']['SubmissionFields']
export type Consent = components['schemas']['ConsentDoc']
export type ConsentInput = components['schemas']['ConsentInput']
export type GatewayError = components['schemas']['ErrorBody']

/** What `PayloadSDK<T>` needs to know of the gateway's collections. */
export type GatewayTypes = {
  collections: {
    practitioners: Practitioner
    herbs: Herb
    'symptom-submissions': SymptomSubmission
    consents: Consent
  }
  collectionsSelect: Record<string, never>
  collectionsJoins: Record<string, never>
  globals: Record<string, never>
  globalsSelect: Record<string, never>
  locale: null
  user: { id: string | number; collection: string }
  auth: Record<string, never>
  db: { defaultIDType: string }
  jobs: Record<string, never>
}

export interface GatewayOptions {
  /** The gateway's API root, e.g. `https://phi-gateway.internal/api`. */
  baseURL: string
  /** A custom fetch (tests, or one that adds mTLS). */
  fetch?: typeof fetch
}

/** The parts of a Payload request this needs (a `PayloadRequest` fits). */
export interface RequestWithToken {
  headers: Headers | { get(name: string): string | null }
  user?: { collection?: string } | null
}

const COOKIE = 'payload-token'

/**
 * The user's own token from a Payload request: the `Authorization: JWT` (or
 * `Bearer`) header, else Payload's `payload-token` cookie.
 */
export function tokenOf(req: RequestWithToken): string | undefined {
  const auth = req.headers.get('authorization')
  if (auth) {
    const m = /^(?:JWT|Bearer)\s+(\S+)$/i.exec(auth.trim())
    if (m) return m[1]
  }
  const cookies = req.headers.get('cookie') ?? ''
  for (const part of cookies.split(';')) {
    const [k, ...v] = part.trim().split('=')
    if (k === COOKIE && v.length) return v.join('=')
  }
  return undefined
}

/** A PayloadSDK sending `token` as the caller's identity. */
export function gatewayWithToken(token: string, options: GatewayOptions): PayloadSDK<GatewayTypes> {
  if (!token) throw new Error('phi-gateway: no user token to forward')
  return new PayloadSDK<GatewayTypes>({
    baseURL: options.baseURL,
    fetch: options.fetch,
    baseInit: { headers: { Authorization: `JWT ${token}` } },
  })
}

/**
 * A PayloadSDK acting as the user of a Payload request. Throws when the
 * request carries no user token (an anonymous request must not reach PHI
 * with someone else's rights).
 */
export function gatewayFor(req: RequestWithToken, options: GatewayOptions): PayloadSDK<GatewayTypes> {
  const token = tokenOf(req)
  if (!token) throw new Error('phi-gateway: the request has no logged-in user token')
  return gatewayWithToken(token, options)
}
