/** Entry point: `node --import tsx src/server.ts` (env contract in README.md). */
import { jsonLog, startApp } from './app.ts';
import { ConfigError, loadConfig } from './config.ts';
import { MigrationError } from './db/migrate.ts';

async function main(): Promise<void> {
  const started = performance.now();
  const config = loadConfig();
  const app = await startApp(config);
  jsonLog({
    level: 'info',
    msg: 'listening',
    url: app.url,
    flaws: config.flaws.names(),
    startup_ms: Math.round(performance.now() - started),
  });
  const stop = async () => {
    await app.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((e: unknown) => {
  const known = e instanceof ConfigError || e instanceof MigrationError;
  process.stderr.write(`clerk-trpc: cannot start: ${known ? (e as Error).message : String(e)}\n`);
  process.exit(2);
});
