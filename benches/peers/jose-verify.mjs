// jose `jwtVerify` (RS256, the public key imported ONCE) on the very token our
// verifier measures, for the side-by-side comparison in scripts/bench-compare.
//
//   node jose-verify.mjs --in DIR [--concurrency N (default 16)] [--seconds S (default 5)]
//
// The checks match ours where jose has no option for them (azp allow-list, sid
// present, v = 2, sts = active), done on the verified payload. WebCrypto runs the
// verifications on libuv's thread pool. Flags, files, sanity checks and output:
// verify-common.mjs. Output: ONE JSON line
//   {"name":"jose","version":..,"concurrency":..,"verifications_per_s":..,"verifications":..,"seconds":..}
import { importJWK, jwtVerify } from 'jose';
import { measure } from './verify-common.mjs';

await measure({
  name: 'jose',
  script: 'jose-verify.mjs',
  package: 'jose',
  async setup(read, expect, fail) {
    const jwk = JSON.parse(read('jwks.json')).keys.find((k) => k.kid === expect.kid);
    if (!jwk) fail(`jwks.json has no key with kid ${expect.kid}`);
    const key = await importJWK(jwk, 'RS256');
    const options = {
      algorithms: ['RS256'],
      issuer: expect.issuer,
      clockTolerance: 5,
      requiredClaims: ['exp', 'nbf', 'iat', 'sub'],
    };
    return async (t) => {
      const { payload, protectedHeader } = await jwtVerify(t, key, options);
      if (protectedHeader.kid !== expect.kid) throw new Error('unknown kid');
      if (!expect.authorized_parties.includes(payload.azp)) throw new Error('azp not allowed');
      if (typeof payload.sid !== 'string' || payload.sid === '') throw new Error('not a session token');
      if (payload.v !== 2) throw new Error('unsupported claims version');
      if (payload.sts !== 'active') throw new Error('session not active');
      return payload;
    };
  },
  signatureRefusal: (e) => e.code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  describe: (e) => `${e.code ?? ''} ${e.message}`,
});
