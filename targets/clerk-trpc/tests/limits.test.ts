import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { startTestApp, twoOrgWorld } from './helpers.ts';

async function search(url: string, token: string, orgId: string) {
  const input = encodeURIComponent(JSON.stringify({ json: { orgId, q: 'x' } }));
  return fetch(`${url}/api/trpc/orders.search?input=${input}`, { headers: { authorization: `Bearer ${token}` } });
}

describe('rate limits', () => {
  it('an org added to the bypass file is never limited, without a restart', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'clerk-trpc-')), 'bypass.txt');
    writeFileSync(file, '# none yet\n');
    const t = await startTestApp({ env: { RATE_LIMITS: 'search=2/60', RATE_LIMIT_BYPASS_FILE: file } });
    try {
      const w = await twoOrgWorld(t);
      const token = t.clerk.token(w.alice, w.a);
      const before = [];
      for (let i = 0; i < 3; i++) before.push((await search(t.url, token, w.aRef)).status);
      assert.deepEqual(before, [200, 200, 429]);
      writeFileSync(file, `# ops ticket 42\n${w.a.id}\n`);
      await new Promise((r) => setTimeout(r, 1500));
      const after = [];
      for (let i = 0; i < 4; i++) after.push((await search(t.url, token, w.aRef)).status);
      assert.deepEqual(after, [200, 200, 200, 200]);
    } finally {
      await t.close();
    }
  });

  it('with the store down, limited routes fail open and say so; nothing answers 500', async () => {
    const t = await startTestApp({ env: { REDIS_URL: 'redis://127.0.0.1:1/0' } });
    try {
      const w = await twoOrgWorld(t);
      const token = t.clerk.token(w.alice, w.a);
      const r = await search(t.url, token, w.aRef);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('ratelimit-degraded'), 'fail-open');
      assert.equal((await t.query('dashboard.stats', { orgId: w.aRef }, token)).status, 200, 'the cache misses');
      const connect = await fetch(`${t.url}/api/integrations/acme-crm/connect`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      assert.equal(connect.status, 503);
    } finally {
      await t.close();
    }
  });
});
