// Shared by jose-verify.mjs and clerk-verify.mjs: flags, the token files
// verify_load wrote, the sanity checks every verifier must pass before it is
// measured, the load loop and the one JSON line of output.
//
// DIR is what `cargo run --release -p tenantry-benches --example verify_load -- --out DIR`
// wrote: token.jwt, tampered.jwt, jwks.json, public.pem, expect.json
// ({issuer, authorized_parties, kid}). Before measuring, the real token must be
// accepted (with its org role intact) and the tampered one (org role changed,
// signature kept) refused for its signature, else the script exits 1: a
// "verifier" that accepts everything cannot win. `--concurrency` verifications
// are kept in flight. The output line also gives the process's CPU time over
// the measurement (`cpu_seconds`, user + system, every thread).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

// peer: { name, script, package, setup(read, expect) -> async verify(token) -> claims,
//         signatureRefusal(error) -> bool, describe(error) -> string }
export async function measure(peer) {
  const fail = (message) => {
    console.error(`${peer.script}: ${message}`);
    process.exit(1);
  };
  const args = parseArgs(process.argv.slice(2), peer.script, fail);
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
  const verify = await peer.setup(read, expect, fail);

  try {
    const claims = await verify(token);
    if (claims.o?.rol !== 'admin') fail(`the real token verified with unexpected claims: o.rol = ${claims.o?.rol}`);
  } catch (e) {
    fail(`${peer.name} REFUSED the real token: ${peer.describe(e)}`);
  }
  let refused = false;
  try {
    await verify(tampered);
  } catch (e) {
    refused = peer.signatureRefusal(e);
    if (!refused) fail(`${peer.name} refused the tampered token for an unexpected reason: ${peer.describe(e)}`);
  }
  if (!refused) fail(`${peer.name} ACCEPTED the tampered token`);

  const load = async (seconds) => {
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
  };
  await load(Math.min(0.5, args.seconds / 5)); // warm-up (JIT, thread pool)
  const cpuBefore = process.cpuUsage();
  const { count, elapsed } = await load(args.seconds);
  const cpu = process.cpuUsage(cpuBefore); // µs, every thread of the process
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const version = createRequire(import.meta.url)(`${peer.package}/package.json`).version;
  console.log(
    JSON.stringify({
      name: peer.name,
      version,
      concurrency: args.concurrency,
      verifications_per_s: Math.round((count / elapsed) * 10) / 10,
      verifications: count,
      seconds: Math.round(elapsed * 1000) / 1000,
      cpu_seconds: Math.round(cpuSeconds * 1000) / 1000,
    }),
  );
}

function parseArgs(argv, script, fail) {
  const usage = `usage: node ${script} --in DIR [--concurrency N] [--seconds S]`;
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
