import { spawn, type ChildProcess } from 'node:child_process';

export interface RunningApp {
  url: string;
  output: () => string;
  stop: () => Promise<void>;
}

/**
 * Starts an example app as a child process, the way a user runs it, on a free port, and waits
 * for its "listening on http://…" line.
 */
export async function startApp(cwd: string, args: string[], env: Record<string, string | undefined> = {}): Promise<RunningApp> {
  const child: ChildProcess = spawn(process.execPath, args, { cwd, env: { ...process.env, PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`app did not start within 60 s:\n${output}`)), 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk;
      const m = /listening on (http:\/\/[^\s]+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => { output += c; });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`app exited with ${code} before listening:\n${output}`));
    });
  });
  return {
    url,
    output: () => output,
    stop: async () => {
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      });
      // A Postgres run made its own schema: leave the database as it was.
      if (env.TOLLGATE_SCHEMA && env.DATABASE_URL) {
        const { default: pg } = await import('pg');
        const client = new pg.Client({ connectionString: env.DATABASE_URL });
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS "${env.TOLLGATE_SCHEMA.replace(/"/g, '')}" CASCADE`);
        await client.end();
      }
    },
  };
}

/** The store variants every example runs on: memory always, SQLite always, Postgres when configured. */
export function storeVariants(): Array<{ name: string; env: Record<string, string> }> {
  const variants: Array<{ name: string; env: Record<string, string> }> = [{ name: 'memory', env: {} }];
  variants.push({ name: 'sqlite', env: { TOLLGATE_STORE: 'sqlite', TOLLGATE_SQLITE_PATH: ':memory:' } });
  const pg = process.env.TOLLGATE_POSTGRES_URL;
  if (pg) variants.push({ name: 'postgres', env: { TOLLGATE_STORE: 'postgres', DATABASE_URL: pg, TOLLGATE_SCHEMA: `tollgate_example_${process.pid}_${Math.random().toString(36).slice(2, 8)}` } });
  else if (process.env.CI === 'true') throw new Error('CI=true but TOLLGATE_POSTGRES_URL is not set: the examples must also run on Postgres in CI.');
  else console.warn('Examples run on memory and SQLite only: set TOLLGATE_POSTGRES_URL to run them on Postgres too.');
  return variants;
}
