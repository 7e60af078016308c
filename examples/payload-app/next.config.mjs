// The admin panel (Next.js). Its own tsconfig: the app's tsconfig.json is
// Node's (the REST server and the tests run on plain Node.js), and Next.js
// would rewrite it.
import { withPayload } from '@payloadcms/next/withPayload'

/** @type {import('next').NextConfig} */
const nextConfig = {
  typescript: { tsconfigPath: 'tsconfig.next.json' },
  // The sources import './x.js' for './x.ts' (Node's ESM rule).
  webpack: (config) => {
    config.resolve.extensionAlias = { '.js': ['.ts', '.tsx', '.js'] }
    return config
  },
  poweredByHeader: false,
}

export default withPayload(nextConfig, { devBundleServerPackages: false })
