// The user collection as the gateway needs it. Its slug is what the gateway's
// PHI_USER_COLLECTIONS lists (default `users`): the gateway names users
// `users:<id>` (the Postgres adapter's ids are numbers: `users:5`), and
// refuses tokens of other collections.
import type { CollectionConfig } from 'payload'

const tokenExpiration = Number(process.env.PAYLOAD_TOKEN_EXPIRATION ?? 15 * 60)

export const Users: CollectionConfig = {
  slug: 'users',
  auth: {
    // At most the gateway's PHI_MAX_TOKEN_AGE_SECS (the plugin checks at
    // start). A logout ends the session at the gateway too (the plugin's
    // afterLogout hook), so this bounds only a token that never logs out.
    tokenExpiration,
    // Sent as the payload-token cookie by Payload's admin and frontend.
    cookies: { sameSite: 'Strict', secure: process.env.NODE_ENV === 'production' },
  },
  access: {
    // Anyone may sign up as a patient; only admins give roles.
    create: () => true,
    read: ({ req }) => (req.user?.roles?.includes('admin') ? true : { id: { equals: req.user?.id } }),
    update: ({ req }) => Boolean(req.user?.roles?.includes('admin')),
  },
  fields: [
    {
      // The gateway reads the roles from the token's `roles` claim:
      // practitioner, editor, admin, auditor (everyone is a patient of their
      // own records).
      name: 'roles',
      type: 'select',
      hasMany: true,
      options: ['practitioner', 'editor', 'admin', 'auditor'],
      saveToJWT: true,
      access: {
        create: ({ req }) => Boolean(req.user?.roles?.includes('admin')),
        update: ({ req }) => Boolean(req.user?.roles?.includes('admin')),
      },
    },
  ],
}
