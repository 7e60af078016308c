/**
 * phi-gateway from a Payload CMS v3 app.
 *
 * `gatewayFor(req, { baseURL })` returns Payload's own REST client
 * (`PayloadSDK`) pointed at the gateway, sending the logged-in user's own
 * token: the gateway's row-level security then sees the real user. It never
 * uses a shared admin token, and it refuses to make a client for a request
 * without one.
 *
 * PHI must not pass through Payload's own collections or hooks: Payload would
 * keep copies (versions, drafts, logs). Read and write it through the gateway
 * from server code, as in `example/`.
 */
import { PayloadSDK, PayloadSDKError } from '@payloadcms/sdk'
import type { SelectExcludeType, SelectIncludeType } from 'payload'

export { PayloadSDKError } from '@payloadcms/sdk'
export type { components, operations, paths } from './openapi.js'
import type { components } from './openapi.js'

type Schemas = components['schemas']

/** The gateway's documents and inputs, as its OpenAPI document gives them. */
export type Practitioner = Schemas['PractitionerDoc']
export type PractitionerFields = Schemas['PractitionerFields']
export type Herb = Schemas['HerbDoc']
export type HerbFields = Schemas['HerbFields']
export type SymptomSubmission = Schemas['SubmissionDoc']
export type SymptomSubmissionFields = Schemas['SubmissionFields']
export type Symptom = Schemas['Symptom']
export type Consent = Schemas['ConsentDoc']
export type ConsentInput = Schemas['ConsentInput']
export type GatewayError = Schemas['ErrorBody']
export type GatewayCount = Schemas['Count']
/** A page of a patient's access report, and one access in it. */
export type AccessReport = Schemas['AccessReport']
export type Access = Schemas['Access']

/** Fields the gateway sets itself and refuses in a body: optional for the SDK's `create`/`update` data. */
type ServerSet<D, K extends keyof D> = Omit<D, K> & Partial<Pick<D, K>>

/**
 * A submission as the SDK sees it: `practitionerId` is the practitioner's id
 * at `depth=0` (the default) and the practitioner's document at `depth>=1`,
 * written the way Payload's generated types write a relationship. (The
 * OpenAPI document gives only the id.)
 */
export type SymptomSubmissionWithRelations = Omit<
  ServerSet<SymptomSubmission, 'owner' | 'symptomCategories' | 'ageBand' | 'status'>,
  'practitionerId'
> & { practitionerId?: string | Practitioner | null }

/**
 * Payload's select shape for one document type (`{ status: true }` or
 * `{ notes: false }`). Intersected with Payload's `SelectType` so that a
 * call without `select` is typed as the whole document.
 */
export type SelectOf<D> = ({ [K in keyof D]?: true } & SelectIncludeType) | ({ [K in keyof D]?: false } & SelectExcludeType)

/** What `PayloadSDK<T>` needs to know of the gateway's collections (the shape of Payload's generated `Config`). */
export type GatewayTypes = {
  auth: Record<string, never>
  blocks: Record<string, never>
  collections: {
    // Fields the gateway defaults (a status, an empty list, all scopes)
    // are optional in `create` data, as in the API.
    practitioners: ServerSet<Practitioner, 'status' | 'modalities'>
    herbs: ServerSet<Herb, 'status'>
    'symptom-submissions': SymptomSubmissionWithRelations
    consents: ServerSet<Consent, 'owner' | 'scope'>
  }
  collectionsJoins: Record<string, never>
  collectionsSelect: {
    practitioners: SelectOf<Practitioner>
    herbs: SelectOf<Herb>
    'symptom-submissions': SelectOf<SymptomSubmission>
    consents: SelectOf<Consent>
  }
  db: { defaultIDType: string }
  fallbackLocale: null
  globals: Record<string, never>
  globalsSelect: Record<string, never>
  jobs: unknown
  locale: null
  user: { id: string | number; collection: string }
}

/** A `PayloadSDK` typed for the gateway's collections. */
export type GatewaySDK = PayloadSDK<GatewayTypes>

export interface GatewayOptions {
  /** The gateway's API root, e.g. `https://phi-gateway.internal/api`. */
  baseURL: string
  /** A custom fetch (tests, or one that adds mTLS). */
  fetch?: typeof fetch
  /**
   * More headers for every request, e.g. `X-Request-Id` (the gateway records
   * a caller's own request id in the audit entry beside its own).
   * `Authorization` and `Cookie` are refused here: the identity is the user's.
   */
  headers?: Record<string, string>
  /** Payload's `cookiePrefix` (the cookie is `<prefix>-token`). Default `payload`. */
  cookiePrefix?: string
  /**
   * Why the user accesses patients' data (`X-Purpose-Of-Use`, recorded in
   * each audit entry and exported as FHIR `purposeOfEvent`). The gateway
   * requires it of practitioners and admins on submissions and consents
   * (400 without it); a patient's own access is `patient-request`.
   */
  purposeOfUse?: PurposeOfUse
}

/** The gateway's purposes of use (HL7 v3 PurposeOfUse: TREAT, HPAYMT, HOPERAT, HRESCH, ETREAT, PATRQT). */
export type PurposeOfUse = 'treatment' | 'payment' | 'operations' | 'research' | 'emergency' | 'patient-request'

/** The parts of a Payload request this needs (a `PayloadRequest` fits, so does a fetch `Request`). */
export interface RequestWithToken {
  headers: Headers | { get(name: string): string | null }
  /**
   * Payload's verified user. `null` (Payload found no valid user) is refused
   * even if a token is present; `undefined` (not a Payload request) leaves it
   * to the gateway to verify the token.
   */
  user?: { id?: string | number; collection?: string } | null
}

/** Thrown when there is no user token to forward. */
export class NoUserTokenError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'NoUserTokenError'
  }
}

/**
 * The user's own token from a Payload request, in Payload's order: the
 * `Authorization: JWT <token>` (or `Bearer <token>`) header, else Payload's
 * `payload-token` cookie. An `API-Key` header is not a token to forward
 * (the gateway knows only its own API keys).
 */
export function tokenOf(req: RequestWithToken, cookiePrefix = 'payload'): string | undefined {
  const auth = req.headers.get('authorization')
  if (auth) {
    const m = /^(?:JWT|Bearer)\s+(\S+)$/i.exec(auth.trim())
    if (m) return m[1]
  }
  const name = `${cookiePrefix}-token`
  for (const part of (req.headers.get('cookie') ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue
    const raw = part.slice(eq + 1).trim()
    if (!raw) return undefined
    try {
      return decodeURIComponent(raw)
    } catch {
      return raw
    }
  }
  return undefined
}

/** The unverified claims of a JWT (for a consistency check only; the gateway verifies). */
function claimsOf(token: string): Record<string, unknown> | undefined {
  const part = token.split('.')[1]
  if (!part) return undefined
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/')
    const json = new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)))
    const v: unknown = JSON.parse(json)
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

const FORBIDDEN_EXTRA = new Set(['authorization', 'cookie'])

/** A PayloadSDK sending `token` as the caller's identity (`Authorization: JWT <token>`). */
export function gatewayWithToken(token: string, options: GatewayOptions): GatewaySDK {
  if (!token || /\s/.test(token)) throw new NoUserTokenError('phi-gateway: no user token to forward')
  if (!options?.baseURL) throw new Error('phi-gateway: options.baseURL (the gateway API root) is required')
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(options.headers ?? {})) {
    if (FORBIDDEN_EXTRA.has(k.toLowerCase())) {
      throw new Error(`phi-gateway: options.headers may not set ${k}; the identity is the user's token`)
    }
    headers[k] = v
  }
  if (options.purposeOfUse) headers['X-Purpose-Of-Use'] = options.purposeOfUse
  headers.Authorization = `JWT ${token}`
  return new PayloadSDK<GatewayTypes>({
    baseURL: options.baseURL.replace(/\/+$/, ''),
    fetch: options.fetch,
    // `headers` must be a plain object: the SDK spreads it into each request's
    // headers. `no-store` keeps PHI out of any fetch cache (Next.js's Data
    // Cache persists responses to disk).
    baseInit: { headers, cache: 'no-store' },
  })
}

/**
 * A PayloadSDK acting as the user of a Payload request. Throws
 * `NoUserTokenError` when the request carries no user token, or when Payload
 * found no valid user for it: an anonymous request must not reach PHI with
 * anyone's rights, and there is no fallback to a service token.
 */
export function gatewayFor(req: RequestWithToken, options: GatewayOptions): GatewaySDK {
  return gatewayWithToken(userToken(req, options), options)
}

/** The logged-in user's own token from a Payload request, checked against Payload's user (see `gatewayFor`). */
function userToken(req: RequestWithToken, options: GatewayOptions): string {
  if (req.user === null) {
    throw new NoUserTokenError('phi-gateway: the request has no logged-in user')
  }
  const token = tokenOf(req, options?.cookiePrefix)
  if (!token) throw new NoUserTokenError('phi-gateway: the request has no logged-in user token')
  const user = req.user
  if (user && user.id != null) {
    // Payload's user and the token forwarded must be the same person.
    const c = claimsOf(token)
    if (!c || String(c.id) !== String(user.id) || (user.collection && c.collection !== user.collection)) {
      throw new NoUserTokenError("phi-gateway: the request's token is not the logged-in user's")
    }
  }
  return token
}

/** What a page of the access report covers. Times are dates or RFC 3339. */
export interface AccessReportQuery {
  from?: string
  to?: string
  /** Also the patient's own accesses. */
  includeOwn?: boolean
  /** 1 to 1000 (default 100). */
  limit?: number
  /** The `nextAfter` of the previous page. */
  after?: number
}

/**
 * The logged-in patient's report of who accessed their records
 * (`GET /api/audit/my-access-report`): when, who, what, why, and whether in
 * an emergency. Errors are `PayloadSDKError`s, as the SDK's.
 */
export async function myAccessReport(
  req: RequestWithToken,
  options: GatewayOptions,
  query: AccessReportQuery = {},
): Promise<AccessReport> {
  const token = userToken(req, options)
  if (!options?.baseURL) throw new Error('phi-gateway: options.baseURL (the gateway API root) is required')
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined) params.set(k, String(v))
  }
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(options.headers ?? {})) {
    if (FORBIDDEN_EXTRA.has(k.toLowerCase())) {
      throw new Error(`phi-gateway: options.headers may not set ${k}; the identity is the user's token`)
    }
    headers[k] = v
  }
  headers.Authorization = `JWT ${token}`
  const qs = params.toString()
  const url = `${options.baseURL.replace(/\/+$/, '')}/audit/my-access-report${qs ? `?${qs}` : ''}`
  const response = await (options.fetch ?? fetch)(url, { headers, cache: 'no-store' })
  const body = (await response.json()) as AccessReport | GatewayError
  if (!response.ok) {
    const errors = 'errors' in body ? body.errors : []
    throw new PayloadSDKError({
      errors: errors as never,
      message: errors[0]?.message ?? `phi-gateway: ${response.status}`,
      response,
      status: response.status,
    })
  }
  return body as AccessReport
}

export {
  phiGateway,
  gatewayConfigProblems,
  gatewayEndpoints,
  gatewayPages,
  escapeHtml,
  logoutAtGateway,
  ADMIN_VIEWS,
  OPTIONS_KEY,
  type PhiGatewayPluginOptions,
} from './plugin.js'
