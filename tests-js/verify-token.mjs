// Verifies a tenantry session token with @clerk/backend's networkless
// verifyToken, then the same token with its payload tampered.
// Input (argv[2]): JSON {token, public_pem, authorized_parties}.
// Output: one JSON line {accepted, claims, tampered_error}.
import { readFileSync } from 'node:fs';
import { verifyToken } from '@clerk/backend';

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = { accepted: false, claims: null, error: null, tampered_error: null };
try {
  out.claims = await verifyToken(input.token, { jwtKey: input.public_pem, authorizedParties: input.authorized_parties });
  out.accepted = true;
} catch (e) {
  out.error = e.reason ?? String(e.message);
}
const [h, p, s] = input.token.split('.');
const payload = JSON.parse(Buffer.from(p, 'base64url'));
payload.o = { ...(payload.o ?? {}), rol: 'owner' };
const tampered = [h, Buffer.from(JSON.stringify(payload)).toString('base64url'), s].join('.');
try {
  await verifyToken(tampered, { jwtKey: input.public_pem, authorizedParties: input.authorized_parties });
} catch (e) {
  out.tampered_error = e.reason ?? String(e.message);
}
console.log(JSON.stringify(out));
