// Verifies webhook deliveries the harness sent (Clerk-format events signed
// with the Svix scheme) with @clerk/backend's verifyWebhook, as an app's
// webhook route does; then the first one again with its body tampered.
// Input (argv[2]): JSON {signing_secret, deliveries: [{headers: {name: value}, body}]}.
// Output: one JSON line {results: [{ok, type, data, error}], tampered_error}.
import { readFileSync } from 'node:fs';
import { verifyWebhook } from '@clerk/backend/webhooks';

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const request = (d, body) =>
  new Request('http://app.test/api/webhooks', { method: 'POST', headers: d.headers, body });
const results = [];
for (const d of input.deliveries) {
  try {
    const event = await verifyWebhook(request(d, d.body), { signingSecret: input.signing_secret });
    results.push({ ok: true, type: event.type, data: event.data, error: null });
  } catch (e) {
    results.push({ ok: false, type: null, data: null, error: String(e.message) });
  }
}
let tampered_error = null;
if (input.deliveries.length > 0) {
  const d = input.deliveries[0];
  const body = d.body.replace('"object":"event"', '"object":"event","tampered":true');
  try {
    await verifyWebhook(request(d, body), { signingSecret: input.signing_secret });
  } catch (e) {
    tampered_error = String(e.message);
  }
}
console.log(JSON.stringify({ results, tampered_error }));
