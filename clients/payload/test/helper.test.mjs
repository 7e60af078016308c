// The helper alone (no gateway): which token it forwards, and when it refuses.
// Runs against the built package (`npm test` builds first).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { gatewayFor, gatewayWithToken, tokenOf, NoUserTokenError } from '../dist/index.js'

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url')
const jwt = (claims) => `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}.c2ln`
const PAT = jwt({ id: 'pat', collection: 'users', roles: [] })
const OTHER = jwt({ id: 'other', collection: 'users', roles: [] })
const req = (headers, user) => ({ headers: new Headers(headers), user })
const opts = { baseURL: 'http://gateway.test/api/' }

/** The requests an SDK makes, captured instead of sent. */
function capture() {
  const calls = []
  const fetch = async (url, init) => {
    calls.push({ url, init, headers: new Headers(init.headers) })
    return new Response(JSON.stringify({ docs: [], totalDocs: 0 }), { status: 200, headers: { 'content-type': 'application/json' } })
  }
  return { calls, fetch }
}

test('the Authorization header (JWT or Bearer), else the payload-token cookie', () => {
  assert.equal(tokenOf(req({ authorization: `JWT ${PAT}` })), PAT)
  assert.equal(tokenOf(req({ authorization: `Bearer ${PAT}` })), PAT)
  assert.equal(tokenOf(req({ authorization: `jwt ${PAT}` })), PAT)
  assert.equal(tokenOf(req({ cookie: `theme=dark; payload-token=${PAT}; x=1` })), PAT)
  // the header wins over the cookie, as in Payload's jwtOrder
  assert.equal(tokenOf(req({ authorization: `JWT ${PAT}`, cookie: `payload-token=${OTHER}` })), PAT)
  // another cookiePrefix
  assert.equal(tokenOf(req({ cookie: `cms-token=${PAT}` }), 'cms'), PAT)
  assert.equal(tokenOf(req({ cookie: `payload-token=${PAT}` }), 'cms'), undefined)
  // a Payload API key is not a token the gateway knows
  assert.equal(tokenOf(req({ authorization: 'users API-Key abc' })), undefined)
  assert.equal(tokenOf(req({ cookie: 'payload-token=' })), undefined)
  assert.equal(tokenOf(req({})), undefined)
})

test('refuses a request without a user token, and never falls back to another identity', () => {
  assert.throws(() => gatewayFor(req({}), opts), NoUserTokenError)
  assert.throws(() => gatewayFor(req({ authorization: 'users API-Key abc' }), opts), NoUserTokenError)
  assert.throws(() => gatewayFor(req({ cookie: 'payload-token=' }), opts), NoUserTokenError)
  // Payload found no valid user (expired, logged out): refused even with a token present
  assert.throws(() => gatewayFor(req({ authorization: `JWT ${PAT}` }, null), opts), NoUserTokenError)
  // Payload's user is not the token's
  assert.throws(() => gatewayFor(req({ cookie: `payload-token=${OTHER}` }, { id: 'pat', collection: 'users' }), opts), NoUserTokenError)
  assert.throws(() => gatewayFor(req({ authorization: `JWT ${PAT}` }, { id: 'pat', collection: 'customers' }), opts), NoUserTokenError)
  assert.throws(() => gatewayWithToken('', opts), NoUserTokenError)
  assert.throws(() => gatewayFor(req({ authorization: `JWT ${PAT}` }), { baseURL: '' }), /baseURL/)
  assert.throws(
    () => gatewayFor(req({ authorization: `JWT ${PAT}` }), { ...opts, headers: { Authorization: 'JWT admin' } }),
    /may not set Authorization/,
  )
})

test("the SDK sends the user's token as `Authorization: JWT`, whichever way it came", async () => {
  for (const r of [
    req({ cookie: `payload-token=${PAT}` }, { id: 'pat', collection: 'users' }),
    req({ authorization: `Bearer ${PAT}` }),
  ]) {
    const { calls, fetch } = capture()
    const sdk = gatewayFor(r, { ...opts, fetch, headers: { 'X-Request-Id': 'cms-1' } })
    await sdk.find({ collection: 'symptom-submissions', where: { status: { equals: 'submitted' } } })
    assert.equal(calls.length, 1)
    const { url, init, headers } = calls[0]
    assert.match(url, /^http:\/\/gateway\.test\/api\/symptom-submissions\?/)
    assert.equal(headers.get('authorization'), `JWT ${PAT}`)
    assert.equal(headers.get('cookie'), null)
    assert.equal(headers.get('x-request-id'), 'cms-1')
    assert.equal(init.cache, 'no-store')
  }
})

test("the plugin adds its admin views, their nav links and a local avatar; adminViews: false leaves them out", async () => {
  const { phiGateway, ADMIN_VIEWS, OPTIONS_KEY } = await import('../dist/index.js')
  const users = {
    slug: 'users',
    auth: { tokenExpiration: 900 },
    fields: [{ name: 'roles', type: 'select', hasMany: true, options: ['practitioner'], saveToJWT: true }],
  }
  const options = { baseURL: 'http://gateway.internal:8080/api' }
  const config = phiGateway(options)({ collections: [users], admin: { components: { afterNavLinks: ['./Mine#Link'] } } })
  const views = config.admin.components.views
  assert.deepEqual(
    Object.values(views).map((v) => [v.path, v.Component, v.exact]),
    [
      ['/shared-with-me', '@phi-gateway/payload/views#SharedWithMeView', true],
      ['/consents', '@phi-gateway/payload/views#ConsentsView', true],
      ['/my-access-report', '@phi-gateway/payload/views#AccessReportView', true],
    ],
  )
  assert.deepEqual(config.admin.components.afterNavLinks, ['./Mine#Link', '@phi-gateway/payload/views#GatewayNavLinks'])
  // Payload's own default would be Gravatar's (each user's email hash, to a third party).
  assert.equal(config.admin.avatar, 'default')
  assert.equal(config.custom[OPTIONS_KEY], options, 'the views read the options on the server')
  // Every component the import map will name is exported by the views module.
  const views_js = readFileSync(new URL('../dist/views.js', import.meta.url), 'utf8')
  for (const name of [...Object.values(ADMIN_VIEWS).map((v) => v.Component), '@phi-gateway/payload/views#GatewayNavLinks']) {
    assert.match(views_js, new RegExp(`export (async )?function ${name.split('#')[1]}\\b`), name)
  }

  const chosen = phiGateway(options)({ collections: [users], admin: { avatar: 'gravatar' } })
  assert.equal(chosen.admin.avatar, 'gravatar', "the app's own choice is kept")
  const none = phiGateway({ ...options, adminViews: false })({ collections: [users] })
  assert.deepEqual(none.admin.components.views, {})
  assert.deepEqual(none.admin.components.afterNavLinks, [])
})
