// The example app against a real phi-gateway, every token issued by Payload
// itself: users log in through Payload's REST API (its own login, on this
// app's server), and call the gateway with what Payload gave them.
//
//   DATABASE_URI=postgres://.../payload PAYLOAD_SECRET=... PHI_GATEWAY_URL=http://127.0.0.1:8080/api \
//   PAYLOAD_PUBLIC_SERVER_URL=http://localhost:3000 npm test
//
// The gateway must share PAYLOAD_SECRET, list the app's origin in
// PHI_CSRF_ORIGINS and have PHI_TOKEN_LEEWAY_SECS=0 (the expiry test);
// tests/api/payload_app.rs starts it so. The database is Payload's own, and
// empty: the adapter creates its tables.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import type { Server } from 'node:http'
import { randomUUID } from 'node:crypto'
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import { getPayload } from 'payload'
import { gatewayWithToken, gatewayConfigProblems, PayloadSDKError } from '@phi-gateway/payload'
import config, { serverURL } from '../src/payload.config.ts'
import { serve } from '../src/server.ts'

const GATEWAY = process.env.PHI_GATEWAY_URL!.replace(/\/+$/, '')
const RUN = randomUUID().slice(0, 8)
const password = `pw-${RUN}-long-enough`

const shots = process.env.SCREENSHOT_DIR ?? join(process.cwd(), '.screenshots')
let server: Server
// Payload's admin panel (Next.js, built and started) on serverURL's port,
// started in `before` so that it builds while the other tests run.
let admin: ChildProcess | undefined
const adminLog = join(shots, 'next-admin.log')
let app = ''
const users: Record<string, { id: number | string; email: string }> = {}

before(async () => {
  server = await serve(0)
  const addr = server.address()
  app = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`
  mkdirSync(shots, { recursive: true })
  const log = openSync(adminLog, 'w')
  const port = new URL(serverURL).port || '80'
  // Built as a team deploys it (`next build`: compiled, type-checked with the views), then served.
  admin = spawn('sh', ['-c', 'node_modules/.bin/next build && exec node_modules/.bin/next start --port "$ADMIN_PORT" --hostname "$ADMIN_HOST"'], {
    detached: true,
    stdio: ['ignore', log, log],
    env: {
      ...process.env,
      NODE_ENV: 'production',
      NEXT_TELEMETRY_DISABLED: '1',
      ADMIN_PORT: port,
      ADMIN_HOST: new URL(serverURL).hostname,
      // Its sessions last the usual 15 minutes (this run's REST tokens expire in seconds, for the expiry test).
      PAYLOAD_TOKEN_EXPIRATION: '900',
    },
  })
  closeSync(log)
  // The users, made as an operator would (Payload's Local API).
  const payload = await getPayload({ config })
  for (const [name, roles] of Object.entries({
    pat: [],
    doc: ['practitioner'],
    admin: ['admin'],
    late: [],
    apat: [],
    adoc: ['practitioner'],
  })) {
    const email = `${name}-${RUN}@example.org`
    const u = await payload.create({ collection: 'users', data: { email, password, roles } as never })
    users[name] = { id: u.id, email }
  }
})

after(async () => {
  server?.close()
  if (admin?.pid) {
    try {
      process.kill(-admin.pid, 'SIGTERM')
    } catch {
      // already gone
    }
  }
  // Payload keeps its pool open; the test runner waits for nothing else.
  setTimeout(() => process.exit(process.exitCode ?? 0), 100).unref()
})

/** Logs in through Payload's REST API: its token, its expiry, and the cookie it set. */
async function login(name: string) {
  const res = await fetch(`${app}/api/users/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: users[name].email, password }),
  })
  const body = (await res.json()) as { token?: string; exp?: number; errors?: unknown }
  assert.equal(res.status, 200, JSON.stringify(body))
  assert.ok(body.token && body.exp)
  const cookie = res.headers.getSetCookie().find((c) => c.startsWith('payload-token='))
  assert.ok(cookie, 'Payload sets its payload-token cookie')
  return { token: body.token, exp: body.exp, cookie: cookie.split(';')[0] }
}

/** Debian's Chromium, headless, without the background connections this closed network refuses. */
function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  })
}

/** What a browser sends with Payload's cookie on a same-origin page (Payload's CSRF rule checks it). */
const browser = (cookie: string) => ({ cookie, 'sec-fetch-site': 'same-origin' })

const sdk = (token: string, purposeOfUse?: 'treatment' | 'operations') =>
  gatewayWithToken(token, { baseURL: GATEWAY, purposeOfUse })

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p
    return 200
  } catch (e) {
    if (e instanceof PayloadSDKError) return e.status
    throw e
  }
}

test("the plugin accepted this config, and names what is wrong with another", async () => {
  assert.deepEqual(gatewayConfigProblems((await config) as never, { baseURL: GATEWAY }), [])
  const wrong = gatewayConfigProblems(
    {
      collections: [
        { slug: 'users', auth: { tokenExpiration: 86400 }, fields: [{ name: 'roles', type: 'select', hasMany: true, options: ['admin'] }] },
      ],
    } as never,
    { baseURL: GATEWAY, maxTokenAgeSecs: 3600 },
  )
  assert.equal(wrong.length, 2, wrong.join('\n'))
  assert.match(wrong[0], /saveToJWT: true/)
  assert.match(wrong[1], /tokens last 86400 s .* set tokenExpiration to 3600 or less/)
})

test('Payload-issued tokens: a patient, a practitioner linked by an admin, the cookie, the logout and the expiry', async () => {
  // Logged in first: its token is the one that expires at the end.
  const late = await login('late')
  const pat = await login('pat')
  const admin = await login('admin')
  const doc = await login('doc')
  const patId = `users:${users.pat.id}`

  // The patient's submission, written and read back through the gateway.
  const notes = `slept badly, run ${RUN}`
  const created = await sdk(pat.token).create({
    collection: 'symptom-submissions',
    data: { symptoms: [{ name: 'Headache', severity: 3, onset: '2026-11-30' }], notes },
  })
  assert.equal(created.owner, patId, 'the gateway sees the user Payload logged in')
  const back = await sdk(pat.token).findByID({ collection: 'symptom-submissions', id: created.id })
  assert.equal(back.notes, notes)

  // An admin links the Payload practitioner (a numeric id: users:5) to a
  // directory record; the patient shares the submission with it.
  const practitioner = await sdk(admin.token, 'operations').create({
    collection: 'practitioners',
    data: { name: `Dr Run ${RUN}`, slug: `dr-${RUN}`, userId: `users:${users.doc.id}`, location: { lat: 43.65, lon: -79.38 }, status: 'published' },
  })
  assert.equal(practitioner.userId, `users:${users.doc.id}`)
  const consent = await sdk(pat.token).create({
    collection: 'consents',
    data: { practitionerId: practitioner.id, submissionId: created.id },
  })
  assert.ok(consent.id)

  // The practitioner reads it, directly and through the app's endpoint with
  // Payload's cookie (the plugin forwards the user's own token).
  const seen = await sdk(doc.token, 'treatment').findByID({ collection: 'symptom-submissions', id: created.id })
  assert.equal(seen.notes, notes)
  const shared = await fetch(`${app}/api/shared-with-me`, { headers: browser(doc.cookie) })
  const sharedBody = (await shared.json()) as { docs: { id: string }[] }
  assert.equal(shared.status, 200, JSON.stringify(sharedBody))
  assert.ok(sharedBody.docs.some((d) => d.id === created.id))
  // Another patient's view through the app: only their own (none).
  const mine = await fetch(`${app}/api/my-submissions`, { headers: { authorization: `JWT ${late.token}` } })
  assert.equal(mine.status, 200)
  assert.equal(((await mine.json()) as { docs: unknown[] }).docs.length, 0)

  // "Who has seen my record": the practitioner's read is in the patient's report.
  const report = await fetch(`${app}/api/my-access-report`, { headers: browser(pat.cookie) })
  const reportBody = (await report.json()) as { docs: { who: { user: string | null } }[] }
  assert.equal(report.status, 200, JSON.stringify(reportBody))
  assert.ok(reportBody.docs.some((a) => a.who.user === `users:${users.doc.id}`), JSON.stringify(reportBody))

  // The pages, in a real browser (Debian's Chromium, headless) with
  // Payload's cookie: the patient's "who has seen my record", the
  // practitioner's "shared with me"; screenshots kept for a human to look at.
  mkdirSync(shots, { recursive: true })
  const chrome = await launchChromium()
  try {
    const open = async (token: string | null, path: string, shot?: string) => {
      const ctx = await chrome.newContext({ viewport: { width: 1100, height: 700 } })
      if (token) {
        await ctx.addCookies([{ name: 'payload-token', value: token, url: app, httpOnly: true, sameSite: 'Strict' }])
      }
      const page = await ctx.newPage()
      const res = await page.goto(`${app}${path}`)
      const text = (await page.textContent('body')) ?? ''
      if (shot) await page.screenshot({ path: join(shots, shot), fullPage: true })
      await ctx.close()
      return { status: res?.status(), text }
    }
    const report = await open(pat.token, '/api/pages/my-access-report', 'who-has-seen-my-record.png')
    assert.equal(report.status, 200, report.text)
    assert.match(report.text, new RegExp(`Dr Run ${RUN}`), 'the practitioner who read it, by name')
    assert.match(report.text, /READ symptom-submissions/)
    assert.match(report.text, /treatment/)
    assert.ok(!report.text.includes(notes), 'the report names fields, never their values')
    const shared = await open(doc.token, '/api/pages/shared-with-me', 'shared-with-me.png')
    assert.equal(shared.status, 200, shared.text)
    assert.match(shared.text, /Headache \(severity 3\)/)
    assert.match(shared.text, new RegExp(patId))
    // The consents: the patient's own, and the practitioner's (naming them).
    for (const [who, token, shot] of [
      ['patient', pat.token, 'consents-patient.png'],
      ['practitioner', doc.token, 'consents-practitioner.png'],
    ] as const) {
      const consents = await open(token, '/api/pages/consents', shot)
      assert.equal(consents.status, 200, `${who}: ${consents.text}`)
      assert.match(consents.text, new RegExp(practitioner.id), who)
      assert.match(consents.text, new RegExp(`submission ${created.id}`), who)
    }
    const nobody = await open(null, '/api/pages/my-access-report')
    assert.equal(nobody.status, 401)
    assert.match(nobody.text, /Log in/)
  } finally {
    await chrome.close()
  }

  // Payload's cookie straight to the gateway: from the app's origin only.
  const fromApp = await fetch(`${GATEWAY}/symptom-submissions/${created.id}`, {
    headers: { cookie: pat.cookie, origin: serverURL },
  })
  assert.equal(fromApp.status, 200)
  const fromElsewhere = await fetch(`${GATEWAY}/symptom-submissions/${created.id}`, {
    headers: { cookie: pat.cookie, origin: 'https://evil.example' },
  })
  assert.equal(fromElsewhere.status, 401)

  // No login, no data: the app's endpoint and the gateway both refuse.
  assert.equal((await fetch(`${app}/api/my-submissions`)).status, 401)

  // A logout through Payload ends the session at the gateway too.
  const out = await fetch(`${app}/api/users/logout`, { method: 'POST', headers: { authorization: `JWT ${pat.token}` } })
  assert.equal(out.status, 200)
  const me = await fetch(`${app}/api/users/me`, { headers: { authorization: `JWT ${pat.token}` } })
  assert.equal(((await me.json()) as { user: unknown }).user, null, 'Payload no longer knows the token')
  assert.equal(await status(sdk(pat.token).findByID({ collection: 'symptom-submissions', id: created.id })), 401)
  // A new login works again.
  const again = await login('pat')
  assert.equal((await sdk(again.token).findByID({ collection: 'symptom-submissions', id: created.id })).notes, notes)

  // The first token, once expired, is refused (the gateway's leeway is 0 here).
  assert.equal(await status(sdk(late.token).find({ collection: 'symptom-submissions' })), 200)
  const wait = late.exp * 1000 + 1500 - Date.now()
  if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  assert.equal(await status(sdk(late.token).find({ collection: 'symptom-submissions' })), 401)
})

/** Waits until the admin panel answers its login page (its build included). */
async function adminReady(): Promise<void> {
  const deadline = Date.now() + 480_000
  while (Date.now() < deadline) {
    if (admin?.exitCode != null) break
    try {
      const res = await fetch(`${serverURL}/admin/login`, { signal: AbortSignal.timeout(60_000) })
      if (res.status === 200) return
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 500))
  }
  assert.fail(`the admin panel (next build, next start) did not start:\n${readFileSync(adminLog, 'utf8').slice(-4000)}`)
}

test("the plugin's views in Payload's admin panel (Next.js), in Chromium, after a login through the admin's own form", async () => {
  // A patient shares a submission with a practitioner an admin linked.
  const [pat, adminUser] = [await login('apat'), await login('admin')]
  const patId = `users:${users.apat.id}`
  const created = await sdk(pat.token).create({
    collection: 'symptom-submissions',
    data: { symptoms: [{ name: 'Insomnia', severity: 4, onset: '2026-12-01' }], notes: `admin view, run ${RUN}` },
  })
  const practitioner = await sdk(adminUser.token, 'operations').create({
    collection: 'practitioners',
    data: { name: `Dr Admin ${RUN}`, slug: `dr-admin-${RUN}`, userId: `users:${users.adoc.id}`, location: { lat: 51.5, lon: -0.12 }, status: 'published' },
  })
  await sdk(pat.token).create({ collection: 'consents', data: { practitionerId: practitioner.id, submissionId: created.id } })

  await adminReady()
  const offsite: string[] = []
  const chrome = await launchChromium()
  try {
    /** A browser session logged in through the admin's login form (Payload sets its cookie). */
    const session = async (name: string) => {
      // Wide enough that Payload shows its nav open.
      const ctx = await chrome.newContext({ viewport: { width: 1600, height: 900 } })
      const page = await ctx.newPage()
      page.setDefaultTimeout(120_000)
      await page.goto(`${serverURL}/admin/login`)
      await page.fill('#field-email', users[name].email)
      await page.fill('#field-password', password)
      await page.click('button[type="submit"]')
      await page.waitForURL((u) => !u.pathname.startsWith('/admin/login'))
      // Nothing on the admin's pages is fetched from elsewhere (Gravatar's avatar by default).
      page.on('request', (r) => {
        if (!r.url().startsWith(serverURL) && !r.url().startsWith('data:')) offsite.push(r.url())
      })
      return { ctx, page }
    }
    const view = async (page: import('playwright-core').Page, path: string, expect: RegExp, shot?: string) => {
      const res = await page.goto(`${serverURL}/admin${path}`)
      await page.getByText(expect).first().waitFor()
      // A page with a patient's data is never stored by a browser or a proxy.
      assert.match(res?.headers()['cache-control'] ?? '', /no-store/, `${path}: Cache-Control`)
      // What the page shows (not the scripts Next.js inlines).
      const text = await page.innerText('body')
      if (shot) await page.screenshot({ path: join(shots, shot), fullPage: true })
      return { status: res?.status(), text }
    }

    // The practitioner: the submission shared with them, inside the admin's frame (its nav links to the views).
    const doc = await session('adoc')
    const shared = await view(doc.page, '/shared-with-me', /Insomnia \(severity 4\)/, 'admin-shared-with-me.png')
    assert.equal(shared.status, 200)
    assert.match(shared.text, new RegExp(patId), 'the patient, by their Payload id')
    assert.match(shared.text, /Shared with me/, "the nav's link")
    assert.ok(!shared.text.includes(`admin view, run ${RUN}`), 'the view opens only the fields it shows (no notes)')
    const docConsents = await view(doc.page, '/consents', new RegExp(`submission ${created.id}`), 'admin-consents-practitioner.png')
    assert.match(docConsents.text, new RegExp(practitioner.id))
    // Logging out of the admin ends the session at the gateway too: the browser's token is refused there.
    const docToken = (await doc.ctx.cookies(serverURL)).find((c) => c.name === 'payload-token')?.value
    assert.ok(docToken, "the admin's login set Payload's cookie")
    assert.equal(await status(sdk(docToken, 'treatment').findByID({ collection: 'symptom-submissions', id: created.id })), 200)
    await doc.page.goto(`${serverURL}/admin/logout`)
    await doc.page.waitForURL((u) => u.pathname.startsWith('/admin/login'))
    assert.equal(await status(sdk(docToken, 'treatment').findByID({ collection: 'symptom-submissions', id: created.id })), 401)
    await doc.ctx.close()

    // The patient: who has seen their record (the practitioner's read above, by name), their consents, and
    // no practitioner's view (the page says what it is for and asks the gateway nothing).
    const patient = await session('apat')
    const report = await view(patient.page, '/my-access-report', new RegExp(`Dr Admin ${RUN}`), 'admin-my-access-report.png')
    assert.match(report.text, /READ symptom-submissions/)
    assert.match(report.text, /treatment/)
    assert.ok(!report.text.includes('Shared with me'), "a patient's nav has no practitioner's link")
    await view(patient.page, '/consents', new RegExp(`submission ${created.id}`))
    const notMine = await view(patient.page, '/shared-with-me', /This page is for practitioners/)
    assert.ok(!notMine.text.includes('Insomnia'), notMine.text)
    await patient.ctx.close()

    // Nobody logged in: no data, a link to the login.
    const anon = await chrome.newContext()
    const nobody = await anon.newPage()
    await nobody.goto(`${serverURL}/admin/shared-with-me`)
    await nobody.getByText(/Log in to see this page/).first().waitFor()
    assert.ok(!(await nobody.innerText('body')).includes('Insomnia'))
    await anon.close()
    assert.deepEqual(offsite, [], 'requests the admin pages made to other origins')
    // The admin server's log names no value it showed.
    const log = readFileSync(adminLog, 'utf8')
    assert.ok(!log.includes('Insomnia') && !log.includes(`run ${RUN}`), 'PHI in the admin server log')
  } finally {
    await chrome.close()
  }
})
