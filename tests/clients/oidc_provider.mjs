// A real OpenID Connect provider on loopback for the console's sign-in tests: the npm package
// oidc-provider (a certified implementation) with one confidential client, PKCE required, and its
// development interactions (a login form where any account id works, then a consent screen).
//
//   node oidc_provider.mjs <port> <config.json>
//
// config.json: {"client_id", "client_secret", "redirect_uris": [...], "jwks": {"keys": [private JWK]}}.
// The signing key comes from the test, so it can also sign tokens of its own with the issuer's real key.
// Accounts: the id typed into the login form. "name@host" has the email name@host, verified;
// "unverified:name@host" has that email, not verified. Prints "listening <issuer>" once it serves.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const [port, configPath] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const issuer = `http://127.0.0.1:${port}`;

function account(id) {
  const unverified = id.startsWith('unverified:');
  const email = unverified ? id.slice('unverified:'.length) : id;
  return {
    accountId: id,
    async claims() {
      return { sub: id, email, email_verified: !unverified, name: email.split('@')[0] };
    },
  };
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: config.client_id,
      client_secret: config.client_secret,
      redirect_uris: config.redirect_uris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: config.jwks,
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  findAccount: (_ctx, id) => account(id),
  cookies: { keys: ['oidc-provider-test-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = `<!doctype html><h1>oidc-provider error</h1><pre>${JSON.stringify(out).replace(/</g, '&lt;')}</pre>`;
  },
});

// The development interactions say so on stderr once; the test reads stdout only.
const server = provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`listening ${issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
