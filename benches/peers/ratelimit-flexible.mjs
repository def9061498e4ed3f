// rate-limiter-flexible (RateLimiterRedis over ioredis) under the same
// closed-loop load as `cargo run --release -p tenantry-benches --example
// limiter_load`: the same flags, the same JSON line, the same over-admission
// measure (see the doc comment of benches/examples/limiter_load.rs).
//
//   cd benches/peers && npm install --no-audit --no-fund
//   node benches/peers/ratelimit-flexible.mjs --redis-url redis://127.0.0.1:6390 \
//     --concurrency 64 --seconds 5 --limit 100 --window-ms 1000 --orgs 50
//
// RateLimiterRedis is a fixed window anchored at an org's first request
// (SET NX EX + INCRBY in one Lua script, refused requests increment too),
// so its bound in any span shorter than the window is 2 x limit, and its
// `duration` is whole seconds: --window-ms must be a multiple of 1000.
// --auto-pipelining turns on ioredis's enableAutoPipelining (off by
// default, as in a stock setup); "name" then says so.

import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

const USAGE =
  'usage: ratelimit-flexible.mjs --redis-url URL [--concurrency N] [--seconds S] ' +
  '[--algorithm fixed] [--limit N] [--window-ms W] [--orgs K] [--auto-pipelining]';

function fail(message) {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = {
    redisUrl: null,
    concurrency: 64,
    seconds: 5,
    limit: 100,
    windowMs: 1000,
    orgs: 50,
    autoPipelining: false,
  };
  const count = (flag, value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) fail(`${flag} ${value}: expected a whole number >= 1`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--auto-pipelining') {
      args.autoPipelining = true;
      continue;
    }
    if (flag === '--help' || flag === '-h') fail('');
    const value = argv[++i];
    if (value === undefined) fail(`${flag} needs a value`);
    switch (flag) {
      case '--redis-url': args.redisUrl = value; break;
      case '--concurrency': args.concurrency = count(flag, value); break;
      case '--seconds': {
        const s = Number(value);
        if (!(s > 0 && s <= 600)) fail(`--seconds ${value}: expected seconds in (0, 600]`);
        args.seconds = s;
        break;
      }
      case '--algorithm':
        if (value !== 'fixed') fail(`--algorithm ${value}: RateLimiterRedis has only a fixed window`);
        break;
      case '--limit': args.limit = count(flag, value); break;
      case '--window-ms': args.windowMs = count(flag, value); break;
      case '--orgs': args.orgs = count(flag, value); break;
      default: fail(`unknown flag ${flag}`);
    }
  }
  if (!args.redisUrl) fail('--redis-url is required');
  if (args.windowMs % 1000 !== 0) fail(`--window-ms ${args.windowMs}: RateLimiterRedis counts whole seconds`);
  return args;
}

// Wall-clock microseconds (the clock Redis TIME reads on this host).
const origin = Date.now() * 1000 - performance.now() * 1000;
const nowUs = () => Math.floor(origin + performance.now() * 1000);

// Σ_org max(0, largest set of admissions certainly within a span < window − bound).
function spanExcess(admissions, windowUs, bound) {
  let excess = 0;
  for (const list of admissions) {
    list.sort((a, b) => a[0] - b[0]);
    let worst = 0;
    for (let i = 0; i < list.length; i++) {
      const end = list[i][0] + windowUs;
      let certain = 0;
      for (let j = i; j < list.length && list[j][0] < end; j++) {
        if (list[j][1] < end) certain++;
      }
      if (certain > worst) worst = certain;
    }
    excess += Math.max(0, worst - bound);
  }
  return excess;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const redis = new Redis(args.redisUrl, {
    enableAutoPipelining: args.autoPipelining,
    maxRetriesPerRequest: 1,
  });
  const limiter = new RateLimiterRedis({
    storeClient: redis,
    keyPrefix: `rlflx-load-${Date.now().toString(16)}-${process.pid}`,
    points: args.limit,
    duration: args.windowMs / 1000,
  });
  const keys = Array.from({ length: args.orgs }, (_, k) => `org_load_${k}`);
  const admissions = Array.from({ length: args.orgs }, () => []);
  let next = 0;
  let decisions = 0;
  let errors = 0;
  let firstError = null;
  let firstSent = Infinity;
  let lastReceived = 0;
  const started = performance.now();
  const deadline = started + args.seconds * 1000;

  async function caller() {
    while (performance.now() < deadline) {
      const org = next++ % args.orgs;
      const sent = nowUs();
      let allowed = false;
      let ok = true;
      try {
        await limiter.consume(keys[org]);
        allowed = true;
      } catch (e) {
        if (!(e instanceof RateLimiterRes)) {
          ok = false;
          errors++;
          firstError ??= String(e);
        }
      }
      const received = nowUs();
      if (sent < firstSent) firstSent = sent;
      if (received > lastReceived) lastReceived = received;
      if (ok) {
        decisions++;
        if (allowed) admissions[org].push([sent, received]);
      }
    }
  }

  await Promise.all(Array.from({ length: args.concurrency }, caller));
  const elapsed = (performance.now() - started) / 1000;
  redis.disconnect();
  if (firstError) process.stderr.write(`ratelimit-flexible: ${errors} decisions failed; the first: ${firstError}\n`);

  const windowUs = args.windowMs * 1000;
  const admitted = admissions.reduce((n, list) => n + list.length, 0);
  const windows = Math.floor((lastReceived - firstSent) / windowUs) + 2;
  const expectedMax = args.orgs * args.limit * windows;
  const over = Math.max(spanExcess(admissions, windowUs, 2 * args.limit), admitted - expectedMax, 0);
  const line = {
    name: args.autoPipelining ? 'rate-limiter-flexible+autopipelining' : 'rate-limiter-flexible',
    algorithm: 'fixed',
    concurrency: args.concurrency,
    decisions,
    decisions_per_s: Math.round((decisions / elapsed) * 10) / 10,
    admitted,
    expected_max_admitted: expectedMax,
    over_admissions: over,
    errors,
    runtime: 'node',
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

main().catch((e) => {
  process.stderr.write(`ratelimit-flexible: ${e?.stack ?? e}\n`);
  process.exit(1);
});
