// The operator's hand on the rate-limit bypass list (tenantry's
// [rate_limit.hooks] add_bypass_org): `node scripts/bypass-org.mjs FILE ORG_ID`
// adds a Clerk org id to FILE (RATE_LIMIT_BYPASS_FILE of the running app),
// atomically (write, then rename), so the app's mtime poll never reads half a file.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const [file, orgId] = process.argv.slice(2);
if (!file || !orgId || !/^org_[A-Za-z0-9]+$/.test(orgId)) {
  process.stderr.write('usage: node scripts/bypass-org.mjs FILE org_…\n');
  process.exit(2);
}
const current = existsSync(file) ? readFileSync(file, 'utf8') : '';
const lines = current.split('\n').map((l) => l.trim());
if (!lines.includes(orgId)) {
  const next = `${current}${current === '' || current.endsWith('\n') ? '' : '\n'}${orgId}\n`;
  writeFileSync(`${file}.tmp`, next);
  renameSync(`${file}.tmp`, file);
}
