/**
 * `phiGateway({ baseURL })`, for `payload.config.ts`: the endpoints a
 * Payload app needs to show patients' data it never stores itself, a check
 * at start that the app's users reach the gateway with the claims it needs,
 * and the gateway told when a user logs out (so the logged-out token stops
 * working there too).
 */
import type { CollectionAfterLogoutHook, CollectionConfig, Config, Endpoint, Field, PayloadRequest } from 'payload'
import { PayloadSDKError } from '@payloadcms/sdk'
import { gatewayFor, myAccessReport, NoUserTokenError, tokenOf, type GatewayOptions, type PurposeOfUse } from './index.js'

export interface PhiGatewayPluginOptions {
  /** The gateway's API root, reachable from the Payload server, e.g. `http://phi-gateway.internal:8080/api`. */
  baseURL: string
  /** The auth collection whose users call the gateway (the gateway's `PHI_USER_COLLECTIONS`). Default `users`. */
  userCollection?: string
  /**
   * The gateway's `PHI_MAX_TOKEN_AGE_SECS`: the collection's `tokenExpiration`
   * must not be longer, or users would be logged out of the gateway while
   * still logged in to Payload. Default: `PHI_MAX_TOKEN_AGE_SECS` from the
   * environment, else 3600.
   */
  maxTokenAgeSecs?: number
  /** Register the endpoints below (default true). */
  endpoints?: boolean
  /**
   * Add the views to Payload's admin panel (default true): "Shared with me"
   * (`/admin/shared-with-me`), "Consents" (`/admin/consents`) and "Who has
   * seen my record" (`/admin/my-access-report`), with links in its nav.
   * They are React Server Components in `@phi-gateway/payload/views`; run
   * `payload generate:importmap` after adding the plugin.
   */
  adminViews?: boolean
  /** A custom fetch (tests, mTLS). */
  fetch?: typeof fetch
}

/** Payload's default `tokenExpiration` (seconds), when a collection sets none. */
const PAYLOAD_DEFAULT_TOKEN_EXPIRATION = 7200

function isField(f: Field, name: string): f is Field & { name: string; saveToJWT?: boolean | string } {
  return 'name' in f && f.name === name
}

/**
 * What is wrong with `config` for the gateway, in words an operator can act
 * on (empty: nothing). `phiGateway` throws with these at start.
 */
export function gatewayConfigProblems(config: Config, options: PhiGatewayPluginOptions): string[] {
  const problems: string[] = []
  if (!options?.baseURL || !/^https?:\/\//.test(options.baseURL)) {
    problems.push('baseURL must be the gateway API root, e.g. http://phi-gateway.internal:8080/api')
  }
  const slug = options.userCollection ?? 'users'
  const users = config.collections?.find((c) => c.slug === slug)
  if (!users) {
    problems.push(`there is no collection "${slug}" (userCollection): the gateway names users "${slug}:<id>"`)
    return problems
  }
  if (!users.auth) {
    problems.push(`collection "${slug}" has no auth: its users cannot log in`)
    return problems
  }
  const roles = users.fields.find((f) => isField(f, 'roles'))
  if (!roles) {
    problems.push(
      `collection "${slug}" has no "roles" field: the gateway reads practitioner, editor, admin and auditor from the token's roles claim`,
    )
  } else if (!('saveToJWT' in roles) || !roles.saveToJWT || roles.saveToJWT !== true) {
    problems.push(
      `the "roles" field of "${slug}" must have saveToJWT: true, or the gateway sees every user as a patient only`,
    )
  }
  const auth = users.auth === true ? {} : users.auth
  const expiration = auth.tokenExpiration ?? PAYLOAD_DEFAULT_TOKEN_EXPIRATION
  const envMax = Number(process.env.PHI_MAX_TOKEN_AGE_SECS)
  const max = options.maxTokenAgeSecs ?? (Number.isInteger(envMax) && envMax > 0 ? envMax : 3600)
  if (expiration > max) {
    problems.push(
      `"${slug}" tokens last ${expiration} s (auth.tokenExpiration${auth.tokenExpiration === undefined ? ", Payload's default" : ''}) ` +
        `but the gateway refuses tokens older than ${max} s (PHI_MAX_TOKEN_AGE_SECS): set tokenExpiration to ${max} or less`,
    )
  }
  return problems
}

const noStore = { 'Cache-Control': 'no-store' }

/** A gateway refusal or a missing login as the answer Payload would give. */
function refusal(e: unknown, req: PayloadRequest): Response {
  if (e instanceof NoUserTokenError) {
    return Response.json({ errors: [{ message: 'You must be logged in to make this request.' }] }, { status: 401, headers: noStore })
  }
  if (e instanceof PayloadSDKError) {
    // The gateway's own status and Payload-shaped errors; the body is never logged (it may hold PHI).
    req.payload.logger.warn({ msg: 'phi-gateway refused', status: e.status })
    return Response.json({ errors: e.errors }, { status: e.status, headers: noStore })
  }
  throw e
}

function optionsFor(req: PayloadRequest, o: PhiGatewayPluginOptions, purposeOfUse?: PurposeOfUse): GatewayOptions {
  return {
    baseURL: o.baseURL,
    fetch: o.fetch,
    cookiePrefix: req.payload.config.cookiePrefix,
    purposeOfUse,
    // The gateway records our request id in its audit entry beside its own.
    headers: { 'X-Request-Id': req.headers.get('x-request-id') ?? crypto.randomUUID() },
  }
}

/** Treatment for practitioners and admins (the gateway requires a purpose of them); nothing for a patient (their own access is `patient-request`). */
function clinicalPurpose(req: PayloadRequest): PurposeOfUse | undefined {
  const roles = (req.user as { roles?: unknown } | null | undefined)?.roles
  return Array.isArray(roles) && roles.some((r) => r === 'practitioner' || r === 'admin') ? 'treatment' : undefined
}

function page(req: PayloadRequest): number {
  const n = Number(req.query?.page ?? 1)
  return Number.isInteger(n) && n > 0 ? n : 1
}

/** Text for HTML: every value a page shows goes through this. */
export function escapeHtml(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/**
 * A whole page, server-rendered: no script, no outside resource (its CSP
 * allows none), never cached, never framed.
 */
function htmlPage(title: string, body: string, status = 200): Response {
  const doc = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1d2330}
h1{font-size:1.5rem}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #d8dce4;vertical-align:top}
th{background:#f2f4f8}.bg{color:#a30000;font-weight:600}.muted{color:#5b6474}
</style></head><body>
<h1>${escapeHtml(title)}</h1>
${body}
</body></html>`
  return new Response(doc, {
    status,
    headers: {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
    },
  })
}

/** A refusal as a page: the gateway's message (it names no value), or the login hint. */
function refusalPage(e: unknown, req: PayloadRequest, title: string): Response {
  if (e instanceof NoUserTokenError) {
    return htmlPage(title, '<p>Log in to see this page.</p>', 401)
  }
  if (e instanceof PayloadSDKError) {
    req.payload.logger.warn({ msg: 'phi-gateway refused', status: e.status })
    const message = e.errors?.[0]?.message ?? 'The request was refused.'
    return htmlPage(title, `<p>${escapeHtml(message)}</p>`, e.status)
  }
  throw e
}

/** A timestamp as a page shows it: `2026-12-04 21:25:54 UTC`. */
export const timeText = (t: string) => t.replace('T', ' ').replace(/\.\d+/, '').replace('Z', ' UTC')
const when = (t: string) => escapeHtml(timeText(t))

/**
 * What the pages and the admin views show, read from the gateway as the
 * logged-in user. The consents they gave (a patient) or that name them (a
 * practitioner, for treatment).
 */
export function consentsOf(req: PayloadRequest, o: PhiGatewayPluginOptions, pageNo = 1) {
  return gatewayFor(req, optionsFor(req, o, clinicalPurpose(req))).find({ collection: 'consents', limit: 100, page: pageNo })
}

/** The submissions patients shared with a practitioner (for treatment); only the fields shown are opened. */
export function sharedWithMe(req: PayloadRequest, o: PhiGatewayPluginOptions, pageNo = 1) {
  return gatewayFor(req, optionsFor(req, o, 'treatment')).find({
    collection: 'symptom-submissions',
    sort: ['-createdAt'],
    limit: 50,
    page: pageNo,
    select: { owner: true, status: true, symptoms: true, createdAt: true },
  })
}

/** "Who has seen my record": the patient's access report, newest 200. */
export function accessReportOf(req: PayloadRequest, o: PhiGatewayPluginOptions) {
  return myAccessReport(req, optionsFor(req, o), { limit: 200 })
}

/** The pages the plugin registers (under Payload's `/api/pages`). */
export function gatewayPages(o: PhiGatewayPluginOptions): Endpoint[] {
  return [
    {
      // "Who has seen my record": the patient's access report as a page.
      path: '/pages/my-access-report',
      method: 'get',
      handler: async (req) => {
        const title = 'Who has seen my record'
        try {
          const report = await accessReportOf(req, o)
          const rows = report.docs
            .map(
              (a) => `<tr${a.breakGlass ? ' class="bg"' : ''}>
<td>${when(a.at)}</td>
<td>${escapeHtml(a.who.practitionerName ?? a.who.user ?? 'unknown')}<br><span class="muted">${escapeHtml(a.who.roles.join(', '))}</span></td>
<td>${escapeHtml(a.action)} ${escapeHtml(a.collection)}<br><span class="muted">${escapeHtml(a.fields.join(', '))}</span></td>
<td>${escapeHtml(a.purpose ?? '')}${a.breakGlass ? `<br>Emergency access: ${escapeHtml(a.reason ?? '')}` : ''}</td>
</tr>`,
            )
            .join('\n')
          const body = report.docs.length
            ? `<p>Every access to your submissions and consents by anyone else, from ${when(report.from)} to ${when(report.to)}, newest last.</p>
<table><thead><tr><th>When</th><th>Who</th><th>What</th><th>Why</th></tr></thead><tbody>
${rows}
</tbody></table>${report.hasNextPage ? '<p class="muted">Older pages: ask for the report with <code>after</code>.</p>' : ''}`
            : `<p>Nobody else has accessed your records from ${when(report.from)} to ${when(report.to)}.</p>`
          const archived = report.archivedBefore
            ? `<p class="muted">Accesses before ${when(report.archivedBefore)} were archived after the retention period and are not shown.</p>`
            : ''
          return htmlPage(title, body + archived)
        } catch (e) {
          return refusalPage(e, req, title)
        }
      },
    },
    {
      // The consents the user gave (a patient) or that name them (a
      // practitioner): who, what parts, until when.
      path: '/pages/consents',
      method: 'get',
      handler: async (req) => {
        const title = 'Consents'
        try {
          const found = await consentsOf(req, o, page(req))
          const rows = found.docs
            .map(
              (c) => `<tr>
<td>${when(c.createdAt)}</td>
<td>${escapeHtml(c.owner)}</td>
<td>${escapeHtml(c.practitionerId)}</td>
<td>${c.submissionId ? `submission ${escapeHtml(c.submissionId)}` : 'all submissions'}</td>
<td>${escapeHtml((c.scope ?? []).join(', '))}</td>
<td>${c.expiresAt ? when(c.expiresAt) : 'no end'}</td>
</tr>`,
            )
            .join('\n')
          const body = found.docs.length
            ? `<p>The consents you gave, and those that name you as the practitioner.</p>
<table><thead><tr><th>Given</th><th>Patient</th><th>Practitioner</th><th>Shares</th><th>Parts</th><th>Until</th></tr></thead><tbody>
${rows}
</tbody></table>`
            : '<p>No consent names you.</p>'
          return htmlPage(title, body)
        } catch (e) {
          return refusalPage(e, req, title)
        }
      },
    },
    {
      // A practitioner's page: the submissions patients shared with them.
      path: '/pages/shared-with-me',
      method: 'get',
      handler: async (req) => {
        const title = 'Submissions shared with me'
        try {
          const found = await sharedWithMe(req, o, page(req))
          const rows = found.docs
            .map(
              (s) => `<tr>
<td>${when(s.createdAt)}</td>
<td>${escapeHtml(s.owner)}</td>
<td>${(s.symptoms ?? []).map((y) => `${escapeHtml(y.name)} (severity ${escapeHtml(y.severity)})`).join('<br>')}</td>
<td>${escapeHtml(s.status)}</td>
</tr>`,
            )
            .join('\n')
          const body = found.docs.length
            ? `<p>What patients have shared with you (each opening is on their record, for treatment).</p>
<table><thead><tr><th>Submitted</th><th>Patient</th><th>Symptoms</th><th>Status</th></tr></thead><tbody>
${rows}
</tbody></table>`
            : '<p>No patient has shared a submission with you.</p>'
          return htmlPage(title, body)
        } catch (e) {
          return refusalPage(e, req, title)
        }
      },
    },
  ]
}

/** The endpoints the plugin registers (under Payload's `/api`). */
export function gatewayEndpoints(o: PhiGatewayPluginOptions): Endpoint[] {
  return [
    {
      // The logged-in user's own submissions (a patient's view).
      path: '/my-submissions',
      method: 'get',
      handler: async (req) => {
        try {
          const found = await gatewayFor(req, optionsFor(req, o)).find({
            collection: 'symptom-submissions',
            where: { status: { not_equals: 'archived' } },
            sort: ['-createdAt'],
            limit: 10,
            page: page(req),
            // Only what the page shows is opened (and named in the audit entry).
            select: { status: true, symptoms: true, practitionerId: true, createdAt: true },
            depth: 1,
          })
          return Response.json(found, { headers: noStore })
        } catch (e) {
          return refusal(e, req)
        }
      },
    },
    {
      // A practitioner's view: the submissions patients shared with them (for treatment).
      path: '/shared-with-me',
      method: 'get',
      handler: async (req) => {
        try {
          const found = await gatewayFor(req, optionsFor(req, o, 'treatment')).find({
            collection: 'symptom-submissions',
            sort: ['-createdAt'],
            limit: 10,
            page: page(req),
          })
          return Response.json(found, { headers: noStore })
        } catch (e) {
          return refusal(e, req)
        }
      },
    },
    {
      // "Who has seen my record": the patient's access report.
      path: '/my-access-report',
      method: 'get',
      handler: async (req) => {
        const q = req.query ?? {}
        const after = Number(q.after)
        try {
          const report = await myAccessReport(req, optionsFor(req, o), {
            from: typeof q.from === 'string' ? q.from : undefined,
            to: typeof q.to === 'string' ? q.to : undefined,
            after: Number.isInteger(after) && after > 0 ? after : undefined,
            limit: 50,
          })
          return Response.json(report, { headers: noStore })
        } catch (e) {
          return refusal(e, req)
        }
      },
    },
  ]
}

/**
 * Tells the gateway that this token's session is over (`POST
 * /api/auth/logout` with the token itself), so that it is refused there
 * from now on as Payload refuses it. A gateway that cannot be reached does
 * not stop the logout; it is logged, and the token still ends at its
 * expiry.
 */
export function logoutAtGateway(o: PhiGatewayPluginOptions): CollectionAfterLogoutHook {
  return async ({ req }) => {
    const token = tokenOf(req, req.payload.config.cookiePrefix)
    if (!token) return
    try {
      const res = await (o.fetch ?? fetch)(`${o.baseURL.replace(/\/+$/, '')}/auth/logout`, {
        method: 'POST',
        headers: { Authorization: `JWT ${token}` },
        cache: 'no-store',
      })
      if (!res.ok && res.status !== 401) {
        req.payload.logger.warn({ msg: 'phi-gateway did not record the logout', status: res.status })
      }
    } catch (e) {
      req.payload.logger.warn({ msg: 'phi-gateway unreachable at logout', err: String(e) })
    }
  }
}

/** Where the plugin keeps its options in `config.custom`, for the admin views. */
export const OPTIONS_KEY = 'phiGateway'

/** The module of the admin views, as Payload's import map names it. */
const VIEWS_MODULE = '@phi-gateway/payload/views'

/** The admin views, by key (Payload's `admin.components.views`). */
export const ADMIN_VIEWS = {
  phiSharedWithMe: { Component: `${VIEWS_MODULE}#SharedWithMeView`, path: '/shared-with-me', exact: true },
  phiConsents: { Component: `${VIEWS_MODULE}#ConsentsView`, path: '/consents', exact: true },
  phiAccessReport: { Component: `${VIEWS_MODULE}#AccessReportView`, path: '/my-access-report', exact: true },
} as const satisfies Record<string, { Component: string; path: `/${string}`; exact: boolean }>

/**
 * The plugin. Throws at start, naming what to change, when the user
 * collection would not work with the gateway.
 */
export function phiGateway(options: PhiGatewayPluginOptions) {
  return (config: Config): Config => {
    const problems = gatewayConfigProblems(config, options)
    if (problems.length) {
      throw new Error(`phi-gateway: the Payload config does not fit the gateway:\n- ${problems.join('\n- ')}`)
    }
    const slug = options.userCollection ?? 'users'
    const collections = (config.collections ?? []).map((c): CollectionConfig => {
      if (c.slug !== slug) return c
      return {
        ...c,
        hooks: { ...c.hooks, afterLogout: [...(c.hooks?.afterLogout ?? []), logoutAtGateway(options)] },
      }
    })
    const views = options.adminViews === false ? {} : ADMIN_VIEWS
    const components = config.admin?.components ?? {}
    return {
      ...config,
      collections,
      // The views read the options here (server-side only: Payload never sends `custom` to the browser).
      custom: { ...config.custom, [OPTIONS_KEY]: options },
      admin: {
        ...config.admin,
        // Payload's default avatar is Gravatar's: every admin page would send a hash of the user's
        // email (a patient's, here) to a third party. Kept only when the app chose it.
        avatar: config.admin?.avatar ?? 'default',
        components: {
          ...components,
          views: { ...components.views, ...views },
          afterNavLinks: [
            ...(components.afterNavLinks ?? []),
            ...(options.adminViews === false ? [] : [`${VIEWS_MODULE}#GatewayNavLinks`]),
          ],
        },
      },
      endpoints: [
        ...(config.endpoints ?? []),
        ...(options.endpoints === false ? [] : [...gatewayEndpoints(options), ...gatewayPages(options)]),
      ],
    }
  }
}
