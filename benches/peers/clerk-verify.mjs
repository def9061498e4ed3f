// `@clerk/backend` `verifyToken(token, { jwtKey, authorizedParties })` (networkless,
// the PEM as Clerk apps configure it) on the very token our verifier measures, for
// the side-by-side comparison in scripts/bench-compare.
//
//   node clerk-verify.mjs --in DIR [--concurrency N (default 16)] [--seconds S (default 5)]
//
// verifyToken does not check `iss` (Clerk apps trust the key); the issuer is
// checked on the verified payload, as ours does. Flags, files, sanity checks and
// output: verify-common.mjs. Output: ONE JSON line
//   {"name":"@clerk/backend","version":..,"concurrency":..,"verifications_per_s":..,"verifications":..,"seconds":..}
import { verifyToken } from '@clerk/backend';
import { measure } from './verify-common.mjs';

await measure({
  name: '@clerk/backend',
  script: 'clerk-verify.mjs',
  package: '@clerk/backend',
  async setup(read, expect) {
    const options = { jwtKey: read('public.pem'), authorizedParties: expect.authorized_parties };
    return async (t) => {
      const claims = await verifyToken(t, options);
      if (claims.iss !== expect.issuer) throw new Error('foreign issuer');
      return claims;
    };
  },
  signatureRefusal: (e) => e.reason === 'token-invalid-signature',
  describe: (e) => `${e.reason ?? ''} ${e.message}`,
});
