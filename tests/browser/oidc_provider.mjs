// A certified OpenID provider (panva's oidc-provider) on loopback, for the identity-provider
// tests: node oidc_provider.mjs PORT SPEC.json
//
// SPEC: {"keys": [{"kid", "alg"}], "clients": [oidc-provider client metadata],
//        "resource": {"indicator", "audience", "scope", "alg"}}
// Every start generates fresh key pairs for the kids it is given (a restart with the same kid
// is a provider reusing a kid for a new key). Access tokens for the resource are JWTs (RFC
// 9068) signed with resource.alg; ID tokens with each client's id_token_signed_response_alg.
// Sign-in is oidc-provider's development interaction: any login, any password.
import { readFileSync } from 'node:fs';

import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

const [port, specPath] = process.argv.slice(2);
const spec = JSON.parse(readFileSync(specPath, 'utf8'));

const keys = [];
for (const { kid, alg } of spec.keys) {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  keys.push({ ...(await exportJWK(privateKey)), kid, alg, use: 'sig' });
}

const resource = spec.resource;
const provider = new Provider(`http://127.0.0.1:${port}`, {
  jwks: { keys },
  // a client that names no ID-token algorithm signs with the first key's
  clients: spec.clients.map((c) => ({ id_token_signed_response_alg: keys[0].alg, ...c })),
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  claims: { openid: ['sub'] },
  pkce: { required: () => true },
  features: {
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource.indicator,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: resource.scope,
        audience: resource.audience,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: resource.alg } },
      }),
    },
  },
  // quiet: these are loopback tests
  renderError: (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});
provider.proxy = false;
provider.on('server_error', (ctx, error) => console.error('server_error', error));

provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider ready on ${port}`);
});
