/**
 * Every rate-limit policy, in one place: which requests spend from which
 * budget, per org, over a sliding window. `RATE_LIMITS` overrides limits and
 * windows per deployment (`search=5/2,export=3/2`: 5 per 2 s and 3 per 2 s).
 */
export interface Policy {
  name: string;
  limit: number;
  windowSecs: number;
}

const DEFAULTS: Record<string, Policy> = {
  api: { name: 'api', limit: 600, windowSecs: 60 },
  search: { name: 'search', limit: 60, windowSecs: 60 },
  export: { name: 'export', limit: 10, windowSecs: 60 },
};

/** tRPC procedures with a budget of their own; every other procedure spends `api`. */
export const PROCEDURE_POLICIES: Record<string, string> = {
  'orders.search': 'search',
};

export function policies(override: string | undefined): Record<string, Policy> {
  const out: Record<string, Policy> = structuredClone(DEFAULTS);
  for (const part of (override ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const match = /^([a-z]+)=(\d+)\/(\d+)$/.exec(part);
    if (!match || !out[match[1]!]) {
      throw new Error(`RATE_LIMITS: expected name=limit/windowSecs for one of ${Object.keys(out).join(', ')}, got "${part}"`);
    }
    const limit = Number(match[2]);
    const windowSecs = Number(match[3]);
    if (limit < 1 || windowSecs < 1 || windowSecs > 86400) throw new Error(`RATE_LIMITS: "${part}" is out of range`);
    out[match[1]!] = { name: match[1]!, limit, windowSecs };
  }
  return out;
}
