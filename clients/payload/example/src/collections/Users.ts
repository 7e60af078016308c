// The user collection as the gateway needs it. Its slug is what the gateway's
// PHI_USER_COLLECTIONS lists (default `users`): the gateway names users
// `users:<id>`, and refuses tokens of other collections.
import type { CollectionConfig } from 'payload'

export const Users: CollectionConfig = {
  slug: 'users',
  auth: {
    // A logged-out token stays valid until it expires, at the gateway too
    // (it cannot see Payload's logout): keep this short, and set the
    // gateway's PHI_MAX_TOKEN_AGE_SECS to the same bound.
    tokenExpiration: 15 * 60,
    // Sent as the payload-token cookie by Payload's admin and frontend.
    cookies: { sameSite: 'Strict', secure: true },
  },
  access: {
    // Only admins give roles.
    update: ({ req }) => Boolean(req.user?.roles?.includes('admin')),
  },
  fields: [
    {
      // The gateway reads the roles from the token's `roles` claim:
      // practitioner, editor, admin, auditor (everyone is a patient of their own records).
      name: 'roles',
      type: 'select',
      hasMany: true,
      options: ['practitioner', 'editor', 'admin', 'auditor'],
      saveToJWT: true,
      access: { update: ({ req }) => Boolean(req.user?.roles?.includes('admin')) },
    },
  ],
}
