/**
 * The gateway's views in Payload's admin panel (React Server Components,
 * rendered by `@payloadcms/next` in the admin's own layout, nav and theme):
 *
 * - `SharedWithMeView` (`/admin/shared-with-me`): a practitioner's
 *   submissions that patients shared with them, read for treatment;
 * - `ConsentsView` (`/admin/consents`): the consents a patient gave, or
 *   that name a practitioner: who, which parts, until when;
 * - `AccessReportView` (`/admin/my-access-report`): "who has seen my
 *   record", a patient's report of every access by anyone else;
 * - `GatewayNavLinks`: the links to them in the admin's nav.
 *
 * `phiGateway()` registers them; the app's import map names them (run
 * `payload generate:importmap`). Each reads the gateway as the logged-in
 * user, with the user's own `payload-token` cookie (no service token), on the
 * server: nothing the gateway answers is cached, and the browser receives
 * the rendered page only. Errors show the gateway's message (it never holds
 * a value), never a stack.
 */
import type { AdminViewServerProps, PayloadRequest, ServerProps } from 'payload'
import { PayloadSDKError } from '@payloadcms/sdk'
import { DefaultTemplate } from '@payloadcms/next/templates'
import { Gutter } from '@payloadcms/ui'
import React from 'react'
import { NoUserTokenError } from './index.js'
import {
  accessReportOf,
  consentsOf,
  OPTIONS_KEY,
  sharedWithMe,
  timeText,
  type PhiGatewayPluginOptions,
} from './plugin.js'

const cell: React.CSSProperties = {
  textAlign: 'left',
  verticalAlign: 'top',
  padding: '0.5rem 0.75rem',
  borderBottom: '1px solid var(--theme-elevation-150)',
}
const head: React.CSSProperties = { ...cell, background: 'var(--theme-elevation-50)', fontWeight: 600 }
const muted: React.CSSProperties = { color: 'var(--theme-elevation-500)' }

function Table({ columns, rows }: { columns: string[]; rows: React.ReactNode[][] }) {
  return (
    <table style={{ borderCollapse: 'collapse', width: '100%', marginTop: '1rem' }}>
      <thead>
        <tr>
          {columns.map((c) => (
            <th key={c} style={head}>
              {c}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((r, i) => (
          <tr key={i}>
            {r.map((v, j) => (
              <td key={j} style={cell}>
                {v}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  )
}

/** The admin's frame (nav, header, theme) around a view's content. */
function Frame({ props, title, children }: { props: AdminViewServerProps; title: string; children: React.ReactNode }) {
  const { initPageResult, params, searchParams } = props
  const req = initPageResult.req
  return (
    <DefaultTemplate
      i18n={req.i18n}
      locale={initPageResult.locale}
      params={params}
      payload={req.payload}
      permissions={initPageResult.permissions}
      req={req}
      searchParams={searchParams}
      user={req.user ?? undefined}
      visibleEntities={initPageResult.visibleEntities}
    >
      <Gutter>
        <h1 style={{ margin: '1.5rem 0 0.5rem' }}>{title}</h1>
        {children}
      </Gutter>
    </DefaultTemplate>
  )
}

function optionsOf(req: PayloadRequest): PhiGatewayPluginOptions {
  const o = (req.payload.config.custom as Record<string, unknown> | undefined)?.[OPTIONS_KEY]
  if (!o) throw new Error('phi-gateway: the admin views need the phiGateway() plugin in the Payload config')
  return o as PhiGatewayPluginOptions
}

function pageOf(props: AdminViewServerProps): number {
  const raw = props.searchParams?.page
  const n = Number(Array.isArray(raw) ? raw[0] : raw)
  return Number.isInteger(n) && n > 0 ? n : 1
}

/**
 * Reads with `load` and renders with `show`; a missing login or a
 * gateway's refusal becomes a message in the page.
 */
async function Guarded<T>({
  props,
  title,
  load,
  show,
}: {
  props: AdminViewServerProps
  title: string
  load: (req: PayloadRequest, o: PhiGatewayPluginOptions) => Promise<T>
  show: (found: T) => React.ReactNode
}) {
  const req = props.initPageResult.req
  let content: React.ReactNode
  try {
    content = show(await load(req, optionsOf(req)))
  } catch (e) {
    if (e instanceof NoUserTokenError) {
      const login = `${req.payload.config.routes.admin}${req.payload.config.admin.routes.login}`
      content = (
        <p>
          <a href={login}>Log in</a> to see this page.
        </p>
      )
    } else if (e instanceof PayloadSDKError) {
      // The gateway's own message names no value; the body is never logged (it may hold PHI).
      req.payload.logger.warn({ msg: 'phi-gateway refused', status: e.status })
      content = <p role="alert">{e.errors?.[0]?.message ?? 'The request was refused.'}</p>
    } else {
      req.payload.logger.error({ msg: 'phi-gateway unreachable', err: e instanceof Error ? e.name : 'unknown' })
      content = <p role="alert">The gateway could not be reached. Try again in a moment.</p>
    }
  }
  return (
    <Frame props={props} title={title}>
      {content}
    </Frame>
  )
}

function hasRole(user: unknown, role: string): boolean {
  const roles = (user as { roles?: unknown } | null | undefined)?.roles
  return Array.isArray(roles) && roles.includes(role)
}

/** A practitioner's view: the submissions patients shared with them. */
export function SharedWithMeView(props: AdminViewServerProps) {
  const user = props.initPageResult.req.user
  if (user && !hasRole(user, 'practitioner')) {
    // Not asked of the gateway: a patient's own submissions are not "shared with" them.
    return (
      <Frame props={props} title="Submissions shared with me">
        <p>This page is for practitioners: it lists the submissions patients shared with you.</p>
      </Frame>
    )
  }
  return (
    <Guarded
      props={props}
      title="Submissions shared with me"
      load={(req, o) => sharedWithMe(req, o, pageOf(props))}
      show={(found) =>
        found.docs.length ? (
          <>
            <p style={muted}>What patients have shared with you (each opening is on their record, for treatment).</p>
            <Table
              columns={['Submitted', 'Patient', 'Symptoms', 'Status']}
              rows={found.docs.map((s) => [
                timeText(s.createdAt),
                s.owner,
                (s.symptoms ?? []).map((y, i) => <div key={i}>{`${y.name} (severity ${y.severity})`}</div>),
                s.status,
              ])}
            />
          </>
        ) : (
          <p>No patient has shared a submission with you.</p>
        )
      }
    />
  )
}

/** The consents a patient gave, or that name a practitioner. */
export function ConsentsView(props: AdminViewServerProps) {
  return (
    <Guarded
      props={props}
      title="Consents"
      load={(req, o) => consentsOf(req, o, pageOf(props))}
      show={(found) =>
        found.docs.length ? (
          <>
            <p style={muted}>The consents you gave, and those that name you as the practitioner.</p>
            <Table
              columns={['Given', 'Patient', 'Practitioner', 'Shares', 'Parts', 'Until']}
              rows={found.docs.map((c) => [
                timeText(c.createdAt),
                c.owner,
                c.practitionerId,
                c.submissionId ? `submission ${c.submissionId}` : 'all submissions',
                (c.scope ?? []).join(', '),
                c.expiresAt ? timeText(c.expiresAt) : 'no end',
              ])}
            />
          </>
        ) : (
          <p>No consent names you.</p>
        )
      }
    />
  )
}

/** "Who has seen my record": every access to the patient's data by anyone else. */
export function AccessReportView(props: AdminViewServerProps) {
  return (
    <Guarded
      props={props}
      title="Who has seen my record"
      load={(req, o) => accessReportOf(req, o)}
      show={(report) => (
        <>
          {report.docs.length ? (
            <>
              <p style={muted}>
                Every access to your submissions and consents by anyone else, from {timeText(report.from)} to{' '}
                {timeText(report.to)}, newest last.
              </p>
              <Table
                columns={['When', 'Who', 'What', 'Why']}
                rows={report.docs.map((a) => [
                  timeText(a.at),
                  <>
                    {a.who.practitionerName ?? a.who.user ?? 'unknown'}
                    <div style={muted}>{a.who.roles.join(', ')}</div>
                  </>,
                  <>
                    {`${a.action} ${a.collection}`}
                    <div style={muted}>{a.fields.join(', ')}</div>
                  </>,
                  a.breakGlass ? (
                    <strong style={{ color: 'var(--theme-error-500)' }}>
                      {a.purpose} · Emergency access: {a.reason ?? ''}
                    </strong>
                  ) : (
                    (a.purpose ?? '')
                  ),
                ])}
              />
            </>
          ) : (
            <p>
              Nobody else has accessed your records from {timeText(report.from)} to {timeText(report.to)}.
            </p>
          )}
          {report.archivedBefore ? (
            <p style={muted}>
              Accesses before {timeText(report.archivedBefore)} were archived after the retention period and are not
              shown.
            </p>
          ) : null}
        </>
      )}
    />
  )
}

/** The views' links in the admin's nav: "Shared with me" for practitioners, the others for everyone. */
export function GatewayNavLinks({ user, payload }: ServerProps) {
  if (!user) return null
  const admin = payload.config.routes.admin
  const links: [string, string][] = [
    ...(hasRole(user, 'practitioner') ? ([['/shared-with-me', 'Shared with me']] as [string, string][]) : []),
    ['/consents', 'Consents'],
    ['/my-access-report', 'Who has seen my record'],
  ]
  return (
    <nav aria-label="phi-gateway" style={{ display: 'flex', flexDirection: 'column', gap: '0.25rem', marginTop: '1rem' }}>
      <span style={{ ...muted, fontSize: '0.85em' }}>Patient data</span>
      {links.map(([path, label]) => (
        <a key={path} href={`${admin}${path}`} className="nav__link">
          {label}
        </a>
      ))}
    </nav>
  )
}
