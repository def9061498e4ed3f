/**
 * The orgs that are never rate limited (Clerk org ids, one per line, `#`
 * comments), read from RATE_LIMIT_BYPASS_FILE and re-read when the file's
 * mtime changes (polled every second), so an edit applies without a deploy.
 * A missing or unreadable file is an empty list, logged.
 */
import { readFileSync, statSync } from 'node:fs';
import type { Flaws } from '../flaws.ts';

export class BypassList {
  private orgs = new Set<string>();
  private mtimeMs = -1;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly file: string | null,
    private readonly flaws: Flaws,
    private readonly log: (line: Record<string, unknown>) => void,
  ) {
    this.reload();
    // FLAW ratelimit-bypass-read-once: "config is read at boot" — the list is
    // loaded once and the reload timer never started, so adding an org means
    // a redeploy (and until then the org is limited like everyone else).
    if (file && !flaws.has('ratelimit-bypass-read-once')) {
      this.timer = setInterval(() => this.reload(), 1000);
      this.timer.unref();
    }
  }

  has(orgId: string): boolean {
    return this.orgs.has(orgId);
  }

  reload(): void {
    if (!this.file) return;
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.file).mtimeMs;
    } catch {
      if (this.mtimeMs !== 0) this.log({ level: 'warn', msg: 'rate-limit bypass file not readable; no org bypasses' });
      this.orgs = new Set();
      this.mtimeMs = 0;
      return;
    }
    if (mtimeMs === this.mtimeMs) return;
    const text = readFileSync(this.file, 'utf8');
    this.orgs = new Set(
      text
        .split('\n')
        .map((line) => line.replace(/#.*/, '').trim())
        .filter(Boolean),
    );
    this.mtimeMs = mtimeMs;
    this.log({ level: 'info', msg: 'rate-limit bypass list loaded', orgs: this.orgs.size });
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
