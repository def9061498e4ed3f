// jose `jwtVerify` (RS256, the public key imported ONCE) on the very token our
// verifier measures, for the side-by-side comparison in scripts/bench-compare.
//
//   node jose-verify.mjs --in DIR [--concurrency N (default 16)] [--seconds S (default 5)]
//
// DIR is what `cargo run --release -p tenantry-benches --example verify_load -- --out DIR`
// wrote: token.jwt, tampered.jwt, jwks.json, expect.json ({issuer, authorized_parties, kid}).
// Before measuring, the real token must be accepted and the tampered one (org role
// changed, signature kept) refused, else the script exits 1: a "verifier" that accepts
// everything cannot win. The checks match ours where jose has no option for them
// (azp allow-list, sid present, v = 2, sts = active), done on the verified payload.
// `--concurrency` verifications are kept in flight (WebCrypto runs them on libuv's
// thread pool). Output: ONE JSON line
//   {"name":"jose","version":..,"concurrency":..,"verifications_per_s":..,"verifications":..,"seconds":..}
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { importJWK, jwtVerify } from 'jose';

function fail(message) {
  console.error(`jose-verify: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const usage = 'usage: node jose-verify.mjs --in DIR [--concurrency N] [--seconds S]';
  const args = { in: null, concurrency: 16, seconds: 5 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) fail(`${flag} needs a value; ${usage}`);
    if (flag === '--in') args.in = value;
    else if (flag === '--concurrency') {
      args.concurrency = Number(value);
      if (!Number.isInteger(args.concurrency) || args.concurrency < 1 || args.concurrency > 4096)
        fail(`--concurrency: expected an integer in 1..4096, got \`${value}\``);
    } else if (flag === '--seconds') {
      args.seconds = Number(value);
      if (!(args.seconds > 0 && args.seconds <= 3600)) fail(`--seconds: expected seconds in (0, 3600], got \`${value}\``);
    } else fail(`unknown argument \`${flag}\`; ${usage}`);
  }
  if (!args.in) fail(`--in DIR is required; ${usage}`);
  return args;
}

const args = parseArgs(process.argv.slice(2));
const read = (name) => {
  try {
    return readFileSync(join(args.in, name), 'utf8').trim();
  } catch (e) {
    fail(`reading ${join(args.in, name)}: ${e.message} (run the verify_load example with --out first)`);
  }
};
const token = read('token.jwt');
const tampered = read('tampered.jwt');
const expect = JSON.parse(read('expect.json'));
const jwk = JSON.parse(read('jwks.json')).keys.find((k) => k.kid === expect.kid);
if (!jwk) fail(`jwks.json has no key with kid ${expect.kid}`);
const key = await importJWK(jwk, 'RS256');
const options = { algorithms: ['RS256'], issuer: expect.issuer, clockTolerance: 5, requiredClaims: ['exp', 'nbf', 'iat', 'sub'] };

async function verify(t) {
  const { payload, protectedHeader } = await jwtVerify(t, key, options);
  if (protectedHeader.kid !== expect.kid) throw new Error('unknown kid');
  if (!expect.authorized_parties.includes(payload.azp)) throw new Error('azp not allowed');
  if (typeof payload.sid !== 'string' || payload.sid === '') throw new Error('not a session token');
  if (payload.v !== 2) throw new Error('unsupported claims version');
  if (payload.sts !== 'active') throw new Error('session not active');
  return payload;
}

try {
  const payload = await verify(token);
  if (payload.o?.rol !== 'admin') fail(`the real token verified with unexpected claims: o.rol = ${payload.o?.rol}`);
} catch (e) {
  fail(`jose REFUSED the real token: ${e.code ?? ''} ${e.message}`);
}
let refused = false;
try {
  await verify(tampered);
} catch (e) {
  refused = e.code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED';
  if (!refused) fail(`jose refused the tampered token for an unexpected reason: ${e.code ?? ''} ${e.message}`);
}
if (!refused) fail('jose ACCEPTED the tampered token');

async function load(seconds) {
  let count = 0;
  let stop = false;
  const timer = setTimeout(() => (stop = true), seconds * 1000);
  const started = process.hrtime.bigint();
  const worker = async () => {
    while (!stop) {
      await verify(token);
      count += 1;
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, worker));
  clearTimeout(timer);
  return { count, elapsed: Number(process.hrtime.bigint() - started) / 1e9 };
}

await load(Math.min(0.5, args.seconds / 5)); // warm-up (JIT, thread pool)
const { count, elapsed } = await load(args.seconds);
const version = createRequire(import.meta.url)('jose/package.json').version;
console.log(
  JSON.stringify({
    name: 'jose',
    version,
    concurrency: args.concurrency,
    verifications_per_s: Math.round((count / elapsed) * 10) / 10,
    verifications: count,
    seconds: Math.round(elapsed * 1000) / 1000,
  }),
);
