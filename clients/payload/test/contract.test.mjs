// Contract tests: Payload's own REST client (@payloadcms/sdk) drives a real
// phi-gateway, through this package's helper, as a Payload app would.
//
//   GATEWAY_URL=http://127.0.0.1:8080/api PHI_TOKEN_PAT=.. PHI_TOKEN_OTHER=.. \
//   PHI_TOKEN_DOC=.. PHI_TOKEN_EDITOR=.. PHI_TOKEN_ADMIN=.. npm test
//
// The tokens are Payload JWTs for five users of the gateway's user
// collection: two patients (no roles), a practitioner (`practitioner`), an
// editor and an admin. The database may be shared with other tests and
// reruns: every test makes its own documents, named with this run's id, and
// looks only at those.
import { test, describe, before } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { PayloadSDK } from '@payloadcms/sdk'
import { gatewayFor, myAccessReport, PayloadSDKError } from '../dist/index.js'

const NEEDED = ['GATEWAY_URL', 'PHI_TOKEN_PAT', 'PHI_TOKEN_OTHER', 'PHI_TOKEN_DOC', 'PHI_TOKEN_EDITOR', 'PHI_TOKEN_ADMIN']
const missing = NEEDED.filter((k) => !process.env[k])
if (missing.length) {
  throw new Error(
    `contract tests: set ${missing.join(', ')} (GATEWAY_URL is the gateway's API root, e.g. ` +
      'http://127.0.0.1:8080/api; the PHI_TOKEN_* are Payload JWTs, see clients/payload/README.md)',
  )
}
const BASE = process.env.GATEWAY_URL.replace(/\/+$/, '')
const TOKENS = {
  pat: process.env.PHI_TOKEN_PAT,
  other: process.env.PHI_TOKEN_OTHER,
  doc: process.env.PHI_TOKEN_DOC,
  editor: process.env.PHI_TOKEN_EDITOR,
  admin: process.env.PHI_TOKEN_ADMIN,
}
/** The namespaced user id the gateway gives a token's user (`users:5`). */
const userIdOf = (token) => {
  const c = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString())
  return `${c.collection}:${c.id}`
}

const RUN = randomUUID().slice(0, 8)
let n = 0
/** A slug no other test or run uses. */
const unique = (what) => `sdk-${RUN}-${what}-${++n}`

/** A Payload request of `who`, carrying the token the way Payload's admin or frontend would. */
function payloadRequest(who, via = 'header') {
  const token = TOKENS[who]
  const headers = new Headers(via === 'cookie' ? { cookie: `payload-token=${token}` } : { authorization: `JWT ${token}` })
  return { headers }
}
/** The SDK as `who`, made by the helper from a Payload request; practitioners and admins say why (treatment). */
const as = (who, via) =>
  gatewayFor(payloadRequest(who, via), {
    baseURL: BASE,
    ...(who === 'doc' || who === 'admin' ? { purposeOfUse: 'treatment' } : {}),
  })
/** The SDK without a user: the public directory only. (The helper refuses to make one.) */
const anonymous = () => new PayloadSDK({ baseURL: BASE })

const pat = as('pat')
const other = as('other')
const doc = as('doc')
const editor = as('editor')
const admin = as('admin')

/** The SDK's error for a failed call: a PayloadSDKError with the status and Payload's `errors`. */
async function sdkError(promise, status) {
  try {
    await promise
  } catch (e) {
    assert.ok(e instanceof PayloadSDKError, `expected a PayloadSDKError, got ${e?.stack ?? e}`)
    assert.equal(e.status, status, `status ${e.status}: ${e.message}`)
    assert.ok(Array.isArray(e.errors) && e.errors.length > 0, 'errors[] from the body')
    assert.equal(e.message, e.errors[0].message, "the SDK's message is errors[0].message")
    return e
  }
  assert.fail(`expected a ${status}, the call succeeded`)
}

const symptoms = (severity = 4) => [{ name: 'headache', severity, onset: '2026-01-15' }]
const location = { lat: 43.6532, lon: -79.3832 }

/** A published practitioner of this run (admin), optionally linked to a CMS user. */
async function practitioner(extra = {}) {
  const slug = unique('pr')
  return admin.create({
    collection: 'practitioners',
    // slug and email are both unique
    data: { name: `Practitioner ${slug}`, slug, status: 'published', location, email: `${slug}@example.org`, ...extra },
  })
}

before(async () => {
  // Fail once, clearly, when the gateway is not there.
  const url = `${BASE}/openapi.json`
  let res
  try {
    res = await fetch(url)
  } catch (e) {
    throw new Error(`contract tests: no gateway at ${url} (${e.cause?.code ?? e.message}); start one or fix GATEWAY_URL`)
  }
  assert.equal(res.status, 200, `GET ${url}`)
})

describe('find: where (with or/and), sort on several fields, limit and page', () => {
  const tag = `sdk-${RUN}-find`
  const names = ['Alpha', 'Bravo', 'Charlie', 'Delta', 'Echo']
  const herbs = {}
  before(async () => {
    for (const [i, name] of names.entries()) {
      herbs[name] = await editor.create({
        collection: 'herbs',
        data: { name: `${name} ${RUN}`, slug: `${tag}-${name.toLowerCase()}`, status: i % 2 ? 'published' : 'draft' },
      })
    }
  })
  const mine = { slug: { like: `${tag}-` } }

  test('where: equals, like, in, or, and', async () => {
    const all = await editor.find({ collection: 'herbs', where: mine, limit: 100 })
    assert.equal(all.totalDocs, 5)

    const one = await editor.find({ collection: 'herbs', where: { slug: { equals: `${tag}-charlie` } } })
    assert.deepEqual(one.docs.map((d) => d.id), [herbs.Charlie.id])

    const inList = await editor.find({ collection: 'herbs', where: { slug: { in: [`${tag}-alpha`, `${tag}-echo`] } }, sort: 'name' })
    assert.deepEqual(inList.docs.map((d) => d.id), [herbs.Alpha.id, herbs.Echo.id])

    const or = await editor.find({
      collection: 'herbs',
      where: { or: [{ slug: { equals: `${tag}-bravo` } }, { slug: { equals: `${tag}-delta` } }] },
      sort: 'name',
    })
    assert.deepEqual(or.docs.map((d) => d.id), [herbs.Bravo.id, herbs.Delta.id])

    const nested = await editor.find({
      collection: 'herbs',
      where: { and: [mine, { or: [{ status: { equals: 'published' } }, { slug: { equals: `${tag}-alpha` } }] }] },
      sort: 'name',
    })
    assert.deepEqual(nested.docs.map((d) => d.id), [herbs.Alpha.id, herbs.Bravo.id, herbs.Delta.id])

    // A patient sees published herbs only: the same query, fewer documents.
    const seen = await pat.find({ collection: 'herbs', where: mine, sort: 'name' })
    assert.deepEqual(seen.docs.map((d) => d.id), [herbs.Bravo.id, herbs.Delta.id])
  })

  test('sort on several fields (an array, or Payload\'s comma list)', async () => {
    // status ascending (draft before published), then name descending
    const want = [herbs.Echo, herbs.Charlie, herbs.Alpha, herbs.Delta, herbs.Bravo].map((h) => h.id)
    const a = await editor.find({ collection: 'herbs', where: mine, sort: ['status', '-name'] })
    assert.deepEqual(a.docs.map((d) => d.id), want)
    const b = await editor.find({ collection: 'herbs', where: mine, sort: 'status,-name' })
    assert.deepEqual(b.docs.map((d) => d.id), want)
    const c = await editor.find({ collection: 'herbs', where: mine, sort: ['-status', 'name'] })
    assert.deepEqual(c.docs.map((d) => d.id), [...want.slice(3).reverse(), ...want.slice(0, 3).reverse()])
  })

  test('limit and page, with Payload\'s paging fields', async () => {
    const page = (p) => editor.find({ collection: 'herbs', where: mine, sort: 'name', limit: 2, page: p })
    const [p1, p2, p3] = await Promise.all([page(1), page(2), page(3)])
    assert.deepEqual([...p1.docs, ...p2.docs, ...p3.docs].map((d) => d.id), names.map((x) => herbs[x].id))
    assert.deepEqual(
      { totalDocs: p1.totalDocs, limit: p1.limit, totalPages: p1.totalPages, page: p1.page, pagingCounter: p1.pagingCounter },
      { totalDocs: 5, limit: 2, totalPages: 3, page: 1, pagingCounter: 1 },
    )
    assert.deepEqual([p1.hasPrevPage, p1.hasNextPage, p1.prevPage, p1.nextPage], [false, true, null, 2])
    assert.deepEqual([p2.hasPrevPage, p2.hasNextPage, p2.prevPage, p2.nextPage, p2.pagingCounter], [true, true, 1, 3, 3])
    assert.deepEqual([p3.hasPrevPage, p3.hasNextPage, p3.prevPage, p3.nextPage, p3.docs.length], [true, false, 2, null, 1])
    assert.equal(p1.totalDocsCapped, false)

    const beyond = await page(4)
    assert.deepEqual([beyond.docs.length, beyond.totalDocs, beyond.page], [0, 5, 4])

    // pagination: false: the first `limit` documents, not counted
    const first = await editor.find({ collection: 'herbs', where: mine, sort: 'name', limit: 2, pagination: false })
    assert.deepEqual(first.docs.map((d) => d.id), [herbs.Alpha.id, herbs.Bravo.id])
  })

  test('the public directory without a user (a plain PayloadSDK)', async () => {
    const p = await practitioner()
    const draft = await editor.create({
      collection: 'practitioners',
      data: { name: `Draft ${RUN}`, slug: unique('draft'), status: 'draft', location },
    })
    const found = await anonymous().find({ collection: 'practitioners', where: { id: { in: [p.id, draft.id] } } })
    assert.deepEqual(found.docs.map((d) => d.id), [p.id])
    assert.equal(found.docs[0].email, undefined, 'contact fields are for staff and the practitioner')
    const herbsSeen = await anonymous().find({ collection: 'herbs', where: mine })
    assert.equal(herbsSeen.totalDocs, 2)
  })
})

describe('findByID, count, create, update by id, delete by id (a patient\'s own submissions)', () => {
  let pr
  before(async () => {
    pr = await practitioner()
  })

  test('create: 201 with the document; the owner comes from the token', async () => {
    const s = await pat.create({
      collection: 'symptom-submissions',
      data: {
        symptoms: [{ name: 'dry cough', severity: 3, onset: '2026-02-01', notes: 'worse at night' }],
        notes: `created ${RUN}`,
        contactEmail: 'pat@example.org',
        dateOfBirth: '1985-06-30',
        region: 'CA-ON',
        practitionerId: pr.id,
      },
    })
    assert.match(s.id, /^[0-9a-f-]{36}$/)
    assert.equal(s.owner, userIdOf(TOKENS.pat))
    assert.equal(s.status, 'submitted')
    assert.equal(s.notes, `created ${RUN}`)
    assert.equal(s.region, 'CA-ON')
    assert.equal(s.practitionerId, pr.id)
    assert.deepEqual(s.symptoms, [{ name: 'dry cough', severity: 3, onset: '2026-02-01', notes: 'worse at night' }])
    assert.ok(Array.isArray(s.symptomCategories))
    assert.ok(s.createdAt && s.updatedAt)

    const h = await editor.create({ collection: 'herbs', data: { name: `Herb ${RUN}`, slug: unique('herb') } })
    assert.equal(h.status, 'draft')
  })

  test('findByID: the owner reads it; another patient and a practitioner without consent get 404', async () => {
    const s = await pat.create({ collection: 'symptom-submissions', data: { symptoms: symptoms(), practitionerId: pr.id } })
    const read = await pat.findByID({ collection: 'symptom-submissions', id: s.id })
    assert.deepEqual(read, s)
    await sdkError(other.findByID({ collection: 'symptom-submissions', id: s.id }), 404)
    await sdkError(doc.findByID({ collection: 'symptom-submissions', id: s.id }), 404)
    // disableErrors: the SDK's null instead of a throw
    assert.equal(await other.findByID({ collection: 'symptom-submissions', id: s.id, disableErrors: true }), null)
    const e = await sdkError(pat.findByID({ collection: 'symptom-submissions', id: randomUUID() }), 404)
    assert.equal(e.message, 'The requested resource was not found.')
  })

  test('count: {totalDocs, totalDocsCapped}, scoped to the caller', async () => {
    const mine = await practitioner()
    for (let i = 0; i < 3; i++) await pat.create({ collection: 'symptom-submissions', data: { symptoms: symptoms(i), practitionerId: mine.id } })
    await other.create({ collection: 'symptom-submissions', data: { symptoms: symptoms(), practitionerId: mine.id } })
    const where = { practitionerId: { equals: mine.id } }
    assert.deepEqual(await pat.count({ collection: 'symptom-submissions', where }), { totalDocs: 3, totalDocsCapped: false })
    assert.deepEqual(await other.count({ collection: 'symptom-submissions', where }), { totalDocs: 1, totalDocsCapped: false })
    assert.deepEqual(await doc.count({ collection: 'symptom-submissions', where }), { totalDocs: 0, totalDocsCapped: false })
    assert.equal((await pat.count({ collection: 'symptom-submissions', where: { and: [where, { status: { equals: 'archived' } }] } })).totalDocs, 0)
    assert.equal((await editor.count({ collection: 'herbs', where: { slug: { like: `sdk-${RUN}-find-` } } })).totalDocs, 5)
  })

  test('update by id: absent leaves a field, null clears it', async () => {
    const s = await pat.create({
      collection: 'symptom-submissions',
      data: { symptoms: symptoms(), notes: 'before', contactEmail: 'pat@example.org', practitionerId: pr.id },
    })
    const u = await pat.update({ collection: 'symptom-submissions', id: s.id, data: { notes: 'after', contactEmail: null, status: 'archived' } })
    assert.equal(u.id, s.id)
    assert.equal(u.notes, 'after')
    assert.equal(u.contactEmail, null)
    assert.equal(u.status, 'archived')
    assert.deepEqual(u.symptoms, s.symptoms)
    assert.equal(u.practitionerId, pr.id)
    assert.deepEqual(await pat.findByID({ collection: 'symptom-submissions', id: s.id }), u)
    await sdkError(other.update({ collection: 'symptom-submissions', id: s.id, data: { notes: 'not yours' } }), 404)

    const h = await editor.create({ collection: 'herbs', data: { name: `Herb ${RUN}`, slug: unique('herb') } })
    const hu = await editor.update({ collection: 'herbs', id: h.id, data: { status: 'published', scientificName: 'Herba sdk' } })
    assert.deepEqual([hu.status, hu.scientificName, hu.slug], ['published', 'Herba sdk', h.slug])
  })

  test('delete by id: answers the deleted document; then 404', async () => {
    const s = await pat.create({ collection: 'symptom-submissions', data: { symptoms: symptoms(), practitionerId: pr.id } })
    await sdkError(other.delete({ collection: 'symptom-submissions', id: s.id }), 404)
    const d = await pat.delete({ collection: 'symptom-submissions', id: s.id })
    assert.equal(d.id, s.id)
    assert.deepEqual(d.symptoms, s.symptoms)
    await sdkError(pat.findByID({ collection: 'symptom-submissions', id: s.id }), 404)
    await sdkError(pat.delete({ collection: 'symptom-submissions', id: s.id }), 404)
  })
})

describe('bulk update and delete with where', () => {
  test('update with where changes every match under the caller\'s rights: {docs, errors}', async () => {
    const tag = `sdk-${RUN}-bulk-up`
    const made = []
    for (let i = 0; i < 3; i++) made.push(await editor.create({ collection: 'herbs', data: { name: `Bulk ${i} ${RUN}`, slug: `${tag}-${i}` } }))
    const res = await editor.update({ collection: 'herbs', where: { slug: { like: `${tag}-` } }, data: { status: 'published' } })
    assert.deepEqual(res.docs.map((d) => d.id).sort(), made.map((d) => d.id).sort())
    assert.ok(res.docs.every((d) => d.status === 'published'))
    assert.deepEqual(res.errors, [])
    assert.equal(typeof res.message, 'string')
    assert.equal((await pat.count({ collection: 'herbs', where: { slug: { like: `${tag}-` } } })).totalDocs, 3)

    // nothing matches: 200 with no documents
    const none = await editor.update({ collection: 'herbs', where: { slug: { equals: `${tag}-none` } }, data: { status: 'draft' } })
    assert.deepEqual([none.docs, none.errors], [[], []])

    // a patient may not write herbs at all
    await sdkError(pat.update({ collection: 'herbs', where: { slug: { like: `${tag}-` } }, data: { status: 'draft' } }), 403)
  })

  test('a patient\'s bulk update and delete touch only their own documents', async () => {
    const pr = await practitioner()
    const where = { practitionerId: { equals: pr.id } }
    const mine = []
    for (let i = 0; i < 2; i++) mine.push(await pat.create({ collection: 'symptom-submissions', data: { symptoms: symptoms(i), practitionerId: pr.id } }))
    const theirs = await other.create({ collection: 'symptom-submissions', data: { symptoms: symptoms(), practitionerId: pr.id } })

    const up = await pat.update({ collection: 'symptom-submissions', where, data: { status: 'archived', notes: 'bulk' } })
    assert.deepEqual(up.docs.map((d) => d.id).sort(), mine.map((d) => d.id).sort())
    assert.ok(up.docs.every((d) => d.status === 'archived' && d.notes === 'bulk'))
    assert.equal((await other.findByID({ collection: 'symptom-submissions', id: theirs.id })).status, 'submitted')

    const del = await pat.delete({ collection: 'symptom-submissions', where })
    assert.deepEqual(del.docs.map((d) => d.id).sort(), mine.map((d) => d.id).sort())
    assert.deepEqual(del.errors, [])
    assert.equal((await pat.count({ collection: 'symptom-submissions', where })).totalDocs, 0)
    assert.equal((await other.count({ collection: 'symptom-submissions', where })).totalDocs, 1)
  })

  test('all or nothing: one document refused, none changed', async () => {
    // a practitioner linked to the `doc` user, a consent for one submission,
    // which `doc` marks reviewed
    const pr = await practitioner({ userId: userIdOf(TOKENS.doc) })
    const reviewed = await pat.create({ collection: 'symptom-submissions', data: { symptoms: symptoms(), notes: 'kept', practitionerId: pr.id } })
    const submitted = await pat.create({ collection: 'symptom-submissions', data: { symptoms: symptoms(), notes: 'kept', practitionerId: pr.id } })
    await pat.create({ collection: 'consents', data: { practitionerId: pr.id, submissionId: reviewed.id } })
    const r = await doc.update({ collection: 'symptom-submissions', id: reviewed.id, data: { status: 'reviewed' } })
    assert.equal(r.status, 'reviewed')

    // The owner may edit the reviewed one, but may not mark the other reviewed:
    // the whole change is refused, and the reviewed one keeps its notes.
    const e = await sdkError(
      pat.update({ collection: 'symptom-submissions', where: { id: { in: [reviewed.id, submitted.id] } }, data: { status: 'reviewed', notes: 'changed' } }),
      403,
    )
    assert.match(e.message, /reviewed/)
    const after = await pat.find({ collection: 'symptom-submissions', where: { id: { in: [reviewed.id, submitted.id] } }, sort: 'createdAt' })
    assert.deepEqual(after.docs.map((d) => [d.status, d.notes]), [['reviewed', 'kept'], ['submitted', 'kept']])
  })

  test('a bulk change needs a where and takes at most 100 documents', async () => {
    // The SDK's types require `where` (or `id`); plain JavaScript can omit both.
    const e = await sdkError(editor.update({ collection: 'herbs', data: { status: 'published' } }), 400)
    assert.match(e.message, /needs where/)
    await sdkError(editor.delete({ collection: 'herbs' }), 400)

    const tag = `sdk-${RUN}-cap`
    for (let i = 0; i < 101; i++) await editor.create({ collection: 'herbs', data: { name: `Cap ${i} ${RUN}`, slug: `${tag}-${String(i).padStart(3, '0')}` } })
    const where = { slug: { like: `${tag}-` } }
    const up = await sdkError(editor.update({ collection: 'herbs', where, data: { status: 'published' } }), 400)
    assert.match(up.message, /more than 100/)
    await sdkError(editor.delete({ collection: 'herbs', where }), 400)
    assert.equal((await editor.count({ collection: 'herbs', where: { and: [where, { status: { equals: 'published' } }] } })).totalDocs, 0)
    assert.equal((await editor.count({ collection: 'herbs', where })).totalDocs, 101)

    // narrowed, it goes: 100 and then 1
    const first = await editor.delete({ collection: 'herbs', where: { and: [where, { slug: { not_equals: `${tag}-100` } }] } })
    assert.equal(first.docs.length, 100)
    const rest = await editor.delete({ collection: 'herbs', where })
    assert.deepEqual(rest.docs.map((d) => d.slug), [`${tag}-100`])
    assert.equal((await editor.count({ collection: 'herbs', where })).totalDocs, 0)
  })
})

describe('select', () => {
  let s
  before(async () => {
    const pr = await practitioner()
    s = await pat.create({
      collection: 'symptom-submissions',
      data: { symptoms: symptoms(), notes: 'secret', contactEmail: 'pat@example.org', region: 'GB', practitionerId: pr.id },
    })
  })

  test('select[field]=true: only those fields, and id', async () => {
    const page = await pat.find({ collection: 'symptom-submissions', where: { id: { equals: s.id } }, select: { status: true, region: true } })
    assert.deepEqual(page.docs, [{ id: s.id, status: 'submitted', region: 'GB' }])
    const one = await pat.findByID({ collection: 'symptom-submissions', id: s.id, select: { notes: true } })
    assert.deepEqual(one, { id: s.id, notes: 'secret' })
  })

  test('select[field]=false: all but those', async () => {
    const one = await pat.findByID({ collection: 'symptom-submissions', id: s.id, select: { notes: false, contactEmail: false, symptoms: false } })
    assert.equal(one.id, s.id)
    for (const k of ['notes', 'contactEmail', 'symptoms']) assert.ok(!(k in one), `${k} left out`)
    assert.equal(one.status, 'submitted')
    assert.equal(one.region, 'GB')
  })

  test('select on an update by id shapes the answer', async () => {
    const u = await pat.update({ collection: 'symptom-submissions', id: s.id, data: { notes: 'secret' }, select: { status: true } })
    assert.deepEqual(u, { id: s.id, status: 'submitted' })
  })

  test('both kinds at once, or an unknown field: 400', async () => {
    const e = await sdkError(pat.findByID({ collection: 'symptom-submissions', id: s.id, select: { notes: true, region: false } }), 400)
    assert.match(e.message, /^select:/)
    await sdkError(pat.find({ collection: 'symptom-submissions', select: { nope: true } }), 400)
  })
})

describe('depth', () => {
  let pr, s
  before(async () => {
    pr = await practitioner()
    s = await pat.create({ collection: 'symptom-submissions', data: { symptoms: symptoms(), practitionerId: pr.id } })
  })

  test('depth=1 populates practitionerId with the practitioner as the caller may see it', async () => {
    const one = await pat.findByID({ collection: 'symptom-submissions', id: s.id, depth: 1 })
    assert.equal(typeof one.practitionerId, 'object')
    assert.equal(one.practitionerId.id, pr.id)
    assert.equal(one.practitionerId.name, pr.name)
    assert.equal(one.practitionerId.slug, pr.slug)
    assert.equal(one.practitionerId.email, undefined, "a patient does not see the practitioner's contact fields")
    const page = await pat.find({ collection: 'symptom-submissions', where: { id: { equals: s.id } }, depth: 2 })
    assert.equal(page.docs[0].practitionerId.id, pr.id)
  })

  test('depth=0 (and the default) leaves the id', async () => {
    assert.equal((await pat.findByID({ collection: 'symptom-submissions', id: s.id, depth: 0 })).practitionerId, pr.id)
    assert.equal((await pat.findByID({ collection: 'symptom-submissions', id: s.id })).practitionerId, pr.id)
  })

  test('depth past 10 (Payload\'s maxDepth): 400', async () => {
    const e = await sdkError(pat.findByID({ collection: 'symptom-submissions', id: s.id, depth: 11 }), 400)
    assert.match(e.message, /depth/)
  })
})

describe('errors for bad input, as the SDK surfaces them', () => {
  test('a validation error: 400, PayloadSDKError.message is errors[0].message, the fields in errors[0].data.errors', async () => {
    const e = await sdkError(
      pat.create({ collection: 'symptom-submissions', data: { symptoms: [{ name: 'x', severity: 11, onset: '2026-01-01' }], contactEmail: 'not-an-email' } }),
      400,
    )
    assert.equal(e.errors[0].name, 'ValidationError')
    assert.equal(e.message, 'The following fields are invalid: contactEmail, symptoms[0].severity')
    assert.deepEqual(e.errors[0].data.errors.map((f) => f.path).sort(), ['contactEmail', 'symptoms[0].severity'])
    assert.ok(e.errors[0].data.errors.every((f) => typeof f.message === 'string' && f.message))

    const missingFields = await sdkError(editor.create({ collection: 'practitioners', data: {} }), 400)
    assert.equal(missingFields.message, 'The following fields are invalid: name, slug, location')

    const region = await sdkError(pat.create({ collection: 'symptom-submissions', data: { symptoms: symptoms(), region: 'Ontario' } }), 400)
    assert.deepEqual(region.errors[0].data.errors.map((f) => f.path), ['region'])

    const unknown = await sdkError(pat.create({ collection: 'symptom-submissions', data: { symptoms: symptoms(), owner: 'users:someone-else' } }), 400)
    assert.deepEqual(unknown.errors[0].data.errors.map((f) => f.path), ['owner'])

    const slug = unique('dup')
    await editor.create({ collection: 'herbs', data: { name: 'Dup', slug } })
    const dup = await sdkError(editor.create({ collection: 'herbs', data: { name: 'Dup', slug } }), 400)
    assert.deepEqual(dup.errors[0].data.errors.map((f) => f.path), ['slug'])
  })

  test('bad queries: 400 with a message naming the problem', async () => {
    const field = await sdkError(pat.find({ collection: 'symptom-submissions', where: { notes: { equals: 'x' } } }), 400)
    assert.equal(field.message, 'The following path cannot be queried: notes')
    await sdkError(editor.find({ collection: 'herbs', where: { name: { gt: 'a' } } }), 400)
    await sdkError(editor.find({ collection: 'herbs', sort: 'nope' }), 400)
    await sdkError(editor.find({ collection: 'herbs', sort: ['name', '-createdAt', 'slug', 'status'] }), 400)
    await sdkError(editor.find({ collection: 'herbs', limit: 101 }), 400)
    await sdkError(pat.find({ collection: 'symptom-submissions', where: { status: { equals: 'nothing' } } }), 400)
  })

  test('Payload parameters with nothing to do here: accepted when they change nothing, else a 400 naming them', async () => {
    const ok = await editor.find({ collection: 'herbs', where: { slug: { like: `sdk-${RUN}-find-` } }, draft: false, trash: false, locale: 'en', fallbackLocale: 'none' })
    assert.equal(ok.totalDocs, 5)
    assert.match((await sdkError(editor.find({ collection: 'herbs', draft: true }), 400)).message, /^draft:/)
    assert.match((await sdkError(editor.find({ collection: 'herbs', trash: true }), 400)).message, /^trash:/)
    assert.match((await sdkError(editor.find({ collection: 'herbs', populate: { practitioners: { name: true } } }), 400)).message, /^populate:/)
    assert.match((await sdkError(editor.find({ collection: 'herbs', joins: { x: { limit: 1 } } }), 400)).message, /^joins:/)
  })

  test('no user: 401; a role short of the write: 403', async () => {
    const e = await sdkError(anonymous().find({ collection: 'symptom-submissions' }), 401)
    assert.equal(e.message, 'You must be logged in to make this request.')
    const f = await sdkError(pat.create({ collection: 'herbs', data: { name: 'No', slug: unique('no') } }), 403)
    assert.equal(f.message, 'You are not allowed to perform this action.')
    await sdkError(pat.create({ collection: 'practitioners', data: { name: 'No', slug: unique('no'), status: 'draft', location } }), 403)
  })

  test('practitioners and admins say why they access patients\' data: without purposeOfUse, 400 naming the header', async () => {
    for (const who of ['doc', 'admin']) {
      const bare = gatewayFor(payloadRequest(who), { baseURL: BASE })
      const e = await sdkError(bare.find({ collection: 'symptom-submissions' }), 400)
      assert.match(e.message, /X-Purpose-Of-Use/)
      assert.match(e.message, /treatment, payment, operations, research, emergency, patient-request/)
    }
  })
})

describe('identity: the gateway sees the Payload user', () => {
  test('a request authenticated by the payload-token cookie works through the helper', async () => {
    const viaCookie = as('pat', 'cookie')
    const s = await viaCookie.create({ collection: 'symptom-submissions', data: { symptoms: symptoms() } })
    assert.equal(s.owner, userIdOf(TOKENS.pat))
    assert.equal((await pat.findByID({ collection: 'symptom-submissions', id: s.id })).id, s.id)
  })

  test('the patient\'s access report shows the practitioner\'s read, with its purpose', async () => {
    const pr = await practitioner({ userId: userIdOf(TOKENS.doc) })
    const s = await pat.create({ collection: 'symptom-submissions', data: { symptoms: symptoms() } })
    await pat.create({ collection: 'consents', data: { practitionerId: pr.id, submissionId: s.id, scope: ['symptoms'] } })
    const seen = await doc.findByID({ collection: 'symptom-submissions', id: s.id })
    assert.ok(seen.symptoms && !('notes' in seen) && !('contactEmail' in seen), 'only the consented parts')
    const report = await myAccessReport(payloadRequest('pat'), { baseURL: BASE }, { limit: 1000 })
    const read = report.docs.find((d) => d.recordId === s.id && d.action === 'READ')
    assert.ok(read, 'the read is in the report')
    assert.equal(read.purpose, 'treatment')
    assert.equal(read.who.user, userIdOf(TOKENS.doc))
    assert.equal(read.breakGlass, false)
    await assert.rejects(myAccessReport(payloadRequest('pat'), { baseURL: BASE }, { limit: 0 }), (e) => e instanceof PayloadSDKError && e.status === 400)
  })

  test('a practitioner sees a submission once the patient consents', async () => {
    const pr = await practitioner({ userId: userIdOf(TOKENS.doc) })
    const s = await pat.create({ collection: 'symptom-submissions', data: { symptoms: symptoms(), practitionerId: pr.id } })
    await sdkError(doc.findByID({ collection: 'symptom-submissions', id: s.id }), 404)
    const consent = await pat.create({ collection: 'consents', data: { practitionerId: pr.id, submissionId: s.id } })
    assert.equal(consent.owner, userIdOf(TOKENS.pat))
    assert.equal((await doc.findByID({ collection: 'symptom-submissions', id: s.id })).id, s.id)
    assert.equal((await doc.count({ collection: 'symptom-submissions', where: { practitionerId: { equals: pr.id } } })).totalDocs, 1)
    await pat.delete({ collection: 'consents', id: consent.id })
    await sdkError(doc.findByID({ collection: 'symptom-submissions', id: s.id }), 404)
  })
})

// Writes: the answer honours select; it is the document as written, so
// depth on a write is refused with a 400 that names it (read with depth).
describe('writes', () => {
  test('create honours select, and refuses depth with a reason', async () => {
    const pr = await practitioner()
    const s = await pat.create({ collection: 'symptom-submissions', data: { symptoms: symptoms(), practitionerId: pr.id }, select: { practitionerId: true } })
    assert.deepEqual(Object.keys(s).sort(), ['id', 'practitionerId'])
    assert.equal(s.practitionerId, pr.id)
    const e = await sdkError(pat.create({ collection: 'symptom-submissions', data: { symptoms: symptoms() }, depth: 1 }), 400)
    assert.match(e.message, /depth/)
    const read = await pat.findByID({ collection: 'symptom-submissions', id: s.id, depth: 1 })
    assert.equal(read.practitionerId.id, pr.id)
  })

  test('a patient cannot create a submission already reviewed', async () => {
    await sdkError(pat.create({ collection: 'symptom-submissions', data: { symptoms: symptoms(), status: 'reviewed' } }), 403)
  })
})
