// `@clerk/backend` `verifyToken(token, { jwtKey, authorizedParties })` (networkless,
// the PEM as Clerk apps configure it) on the very token our verifier measures, for
// the side-by-side comparison in scripts/bench-compare.
//
//   node clerk-verify.mjs --in DIR [--concurrency N (default 16)] [--seconds S (default 5)]
//
// DIR is what `cargo run --release -p tenantry-benches --example verify_load -- --out DIR`
// wrote: token.jwt, tampered.jwt, public.pem, expect.json ({issuer, authorized_parties, kid}).
// Before measuring, the real token must be accepted and the tampered one (org role
// changed, signature kept) refused, else the script exits 1: a "verifier" that accepts
// everything cannot win. verifyToken does not check `iss` (Clerk apps trust the key);
// the issuer is checked on the verified payload, as ours does.
// Output: ONE JSON line
//   {"name":"@clerk/backend","version":..,"concurrency":..,"verifications_per_s":..,"verifications":..,"seconds":..}
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { verifyToken } from '@clerk/backend';

function fail(message) {
  console.error(`clerk-verify: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const usage = 'usage: node clerk-verify.mjs --in DIR [--concurrency N] [--seconds S]';
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
const jwtKey = read('public.pem');
const expect = JSON.parse(read('expect.json'));
const options = { jwtKey, authorizedParties: expect.authorized_parties };

async function verify(t) {
  const claims = await verifyToken(t, options);
  if (claims.iss !== expect.issuer) throw new Error('foreign issuer');
  return claims;
}

try {
  const claims = await verify(token);
  if (claims.o?.rol !== 'admin') fail(`the real token verified with unexpected claims: o.rol = ${claims.o?.rol}`);
} catch (e) {
  fail(`@clerk/backend REFUSED the real token: ${e.reason ?? ''} ${e.message}`);
}
let refused = false;
try {
  await verify(tampered);
} catch (e) {
  refused = e.reason === 'token-invalid-signature';
  if (!refused) fail(`@clerk/backend refused the tampered token for an unexpected reason: ${e.reason ?? ''} ${e.message}`);
}
if (!refused) fail('@clerk/backend ACCEPTED the tampered token');

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
const version = createRequire(import.meta.url)('@clerk/backend/package.json').version;
console.log(
  JSON.stringify({
    name: '@clerk/backend',
    version,
    concurrency: args.concurrency,
    verifications_per_s: Math.round((count / elapsed) * 10) / 10,
    verifications: count,
    seconds: Math.round(elapsed * 1000) / 1000,
  }),
);
