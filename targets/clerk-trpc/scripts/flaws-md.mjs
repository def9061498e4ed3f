// Writes flaws.md from flaws.json (`npm run flaws-md`); a test keeps them equal.
import { readFileSync, writeFileSync } from 'node:fs';

export function render(manifest) {
  const lines = [
    '# The clerk-trpc flaw corpus',
    '',
    'Generated from `flaws.json` by `npm run flaws-md`; a test keeps this file equal to its output.',
    'Each flaw is one realistic mistake, switched on with `TARGET_FLAW=<name>` at start (an unknown',
    'name refuses to start) and written where it lives as the clean code with a named deviation',
    '(`flaws.has(…)`), with the reason beside it. Expected checks are tenantry catalogue ids',
    '(`tenantry checks list`); a flaw no check covers yet names the check it needs.',
    '',
    '| flaw | family | CWE | expected checks | where | the mistake | why it was written |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const f of manifest.flaws) {
    const checks = f.expected_checks.length > 0 ? f.expected_checks.join(', ') : `none yet — needs: ${f.proposed_checks.join('; ')}`;
    const cell = (s) => s.replace(/\|/g, '\\|');
    lines.push(
      `| \`${f.name}\` | ${f.family} | [CWE-${f.cwe}](https://cwe.mitre.org/data/definitions/${f.cwe}.html) | ${cell(checks)} | ${f.where} | ${cell(f.mistake)} | ${cell(f.reason)} |`,
    );
  }
  lines.push('', `${manifest.flaws.length} flaws.`, '');
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = new URL('..', import.meta.url);
  const manifest = JSON.parse(readFileSync(new URL('flaws.json', dir), 'utf8'));
  writeFileSync(new URL('flaws.md', dir), render(manifest));
}
