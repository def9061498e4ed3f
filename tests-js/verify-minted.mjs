// Verifies a token minted by the harness (session source `mint`) with
// @clerk/backend's verifyToken, the way an app configured for the harness's
// Clerk instance does: networkless with `jwtKey` (the PEM the mint wrote), or
// with `secretKey` + `apiUrl` pointed at the mint (it fetches `/v1/jwks`).
// Input (argv[2]): JSON {token, jwt_key?, secret_key?, api_url?, authorized_parties}.
// Output: one JSON line {accepted, claims, error}.
import { readFileSync } from 'node:fs';
import { verifyToken } from '@clerk/backend';

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const options = { authorizedParties: input.authorized_parties };
if (input.jwt_key) options.jwtKey = input.jwt_key;
if (input.secret_key) options.secretKey = input.secret_key;
if (input.api_url) options.apiUrl = input.api_url;
const out = { accepted: false, claims: null, error: null };
try {
  out.claims = await verifyToken(input.token, options);
  out.accepted = true;
} catch (e) {
  out.error = e.reason ?? String(e.message);
}
console.log(JSON.stringify(out));
