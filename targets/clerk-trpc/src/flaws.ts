/**
 * The injected-flaw switch of tenantry's conformance target.
 *
 * `TARGET_FLAW=<name>` switches on one realistic mistake at start; an unknown
 * name refuses to start. Every flaw lives at exactly one call site, written
 * as the clean code with a named deviation (`if (flaws.has('…'))`), with the
 * developer's reason beside it. flaws.md and flaws.json describe them all.
 */

export const FLAW_NAMES = [
  'org-input-unchecked',
  'membership-not-active-org',
  'tasks-visible-to-org',
  'order-search-no-org-filter',
  'notes-table-without-rls',
  'no-authorized-parties',
  'issuer-not-pinned',
  'pending-sessions-accepted',
  'webhook-signature-unverified',
  'membership-deleted-ignored',
  'stats-cache-keyed-by-user',
  'ratelimit-key-forwarded-ip',
  'ratelimit-bypass-read-once',
  'ratelimit-store-error-500',
  'oauth-state-ttl-ms-as-secs',
  'oauth-state-org-only',
] as const;

export type FlawName = (typeof FLAW_NAMES)[number];

/** The flaws switched on in this process (none, or one). */
export class Flaws {
  private constructor(private readonly on: ReadonlySet<FlawName>) {}

  static none(): Flaws {
    return new Flaws(new Set());
  }

  static of(...names: FlawName[]): Flaws {
    return new Flaws(new Set(names));
  }

  /**
   * The flaw named by `TARGET_FLAW` (empty or unset: none). Throws on an
   * unknown name, so a typo can never start the clean app by accident.
   */
  static parse(value: string | undefined): Flaws {
    const name = (value ?? '').trim();
    if (name === '') return Flaws.none();
    if (!isFlawName(name)) {
      throw new Error(`TARGET_FLAW: unknown flaw "${name}"; known: ${FLAW_NAMES.join(', ')}`);
    }
    return Flaws.of(name);
  }

  has(name: FlawName): boolean {
    return this.on.has(name);
  }

  /** The names switched on, for the startup log. */
  names(): FlawName[] {
    return [...this.on];
  }
}

export function isFlawName(name: string): name is FlawName {
  return (FLAW_NAMES as readonly string[]).includes(name);
}
