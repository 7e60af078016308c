// Packs clients/payload as npm would publish it (`npm pack`: its prepack
// builds dist) and installs that tarball here, unsaved: the app runs the
// package exactly as a Payload team would install it, not the source tree.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readdirSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(dirname(fileURLToPath(import.meta.url)))
const client = join(here, '..', '..', 'clients', 'payload')
const out = join(here, '.pack')
rmSync(out, { recursive: true, force: true })
mkdirSync(out)
const npm = (cwd, ...args) => execFileSync('npm', args, { cwd, stdio: ['ignore', 'pipe', 'inherit'] }).toString()
npm(client, 'pack', '--silent', '--pack-destination', out)
const [tarball] = readdirSync(out).filter((f) => f.endsWith('.tgz'))
if (!tarball) throw new Error('npm pack made no tarball')
npm(here, 'install', '--no-save', '--no-audit', '--no-fund', '--loglevel=error', join(out, tarball))
console.log(`installed ${tarball}`)
