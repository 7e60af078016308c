// Payload's REST API (login, logout, users, and the plugin's endpoints) on
// plain Node.js, without Next.js: Payload's own `handleEndpoints` behind
// node:http. (The admin panel is a Next.js app; this example does not need
// it: users are made through the API or `npm run seed`.)
import { createServer } from 'node:http'
import { Readable } from 'node:stream'
import { handleEndpoints } from 'payload'
import config from './payload.config.ts'

/** Serves Payload's REST API on `host`:`port` (0: a free one); resolves with the server once listening. */
export async function serve(port: number, host = '127.0.0.1') {
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`)
      const headers = new Headers()
      for (const [k, v] of Object.entries(req.headers)) {
        if (Array.isArray(v)) v.forEach((x) => headers.append(k, x))
        else if (v !== undefined) headers.set(k, v)
      }
      const hasBody = req.method !== 'GET' && req.method !== 'HEAD'
      const request = new Request(url, {
        method: req.method,
        headers,
        body: hasBody ? (Readable.toWeb(req) as ReadableStream) : undefined,
        // @ts-expect-error Node's fetch needs this for a streamed body
        duplex: hasBody ? 'half' : undefined,
      })
      const response = await handleEndpoints({ config, request })
      res.statusCode = response.status
      response.headers.forEach((v, k) => {
        if (k !== 'set-cookie') res.setHeader(k, v)
      })
      const cookies = response.headers.getSetCookie()
      if (cookies.length) res.setHeader('set-cookie', cookies)
      res.end(Buffer.from(await response.arrayBuffer()))
    } catch (e) {
      console.error('payload-app: request failed', e instanceof Error ? e.message : e)
      res.statusCode = 500
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ errors: [{ message: 'Something went wrong.' }] }))
    }
  })
  await new Promise<void>((resolve) => server.listen(port, host, resolve))
  return server
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const port = Number(process.env.PORT ?? 3000)
  const host = process.env.HOST ?? '127.0.0.1'
  await serve(port, host)
  console.log(`payload-app: Payload's REST API on http://${host}:${port}/api`)
}
