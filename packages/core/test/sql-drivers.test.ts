/**
 * Drivers are optional peer dependencies (DESIGN §1): nothing reachable from `@tollgate/core`
 * imports one, a store loads its driver only when no client is injected, and a missing driver
 * says what to install.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { POSTGRES_URL } from './fixtures/sql-postgres.js';
import { assertBuilt, startWorker } from './fixtures/sql-processes.js';

const DRIVERS = ['better-sqlite3', 'pg', 'ioredis'];
const src = fileURLToPath(new URL('../src/', import.meta.url));
const dist = fileURLToPath(new URL('../dist/', import.meta.url));

/** Every module specifier a file imports statically or dynamically. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|[\s;])(?:import|export)\s[^'"`]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|require\(\s*['"]([^'"]+)['"]\s*\)|^import\s+['"]([^'"]+)['"]/gm)) {
    out.push(m[1] ?? m[2] ?? m[3] ?? m[4]);
  }
  return out;
}

/** Files reachable from `entry` through relative imports, and the packages they import. */
function reach(entry: string, toFile: (from: string, spec: string) => string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const spec of specifiers(file)) {
      if (spec.startsWith('.')) visit(toFile(file, spec));
      else packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
    }
  };
  visit(entry);
  return { files, packages };
}

describe('optional drivers', () => {
  test('nothing reachable from src/index.ts imports a driver or a store that needs one', () => {
    const { files, packages } = reach(resolve(src, 'index.ts'), (from, spec) => resolve(dirname(from), spec.replace(/\.js$/, '.ts')));
    for (const d of DRIVERS) expect(packages.has(d), `${d} is reachable from @tollgate/core`).toBe(false);
    for (const f of files) expect(f, 'a store module is reachable from @tollgate/core').not.toMatch(/[/\\](sqlite|postgres|redis)[/\\]/);
    // The stores do use them, so the walk is not vacuous.
    expect(reach(resolve(src, 'sqlite/index.ts'), (from, spec) => resolve(dirname(from), spec.replace(/\.js$/, '.ts'))).packages.has('better-sqlite3')).toBe(true);
  });

  test.runIf(existsSync(resolve(dist, 'index.js')))('nor from the built entry points', () => {
    for (const entry of ['index.js', 'index.cjs']) {
      const { packages } = reach(resolve(dist, entry), (from, spec) => resolve(dirname(from), spec));
      for (const d of DRIVERS) expect(packages.has(d), `${d} is reachable from dist/${entry}`).toBe(false);
    }
  });

  test('a missing driver says what to install; an injected client needs no import', async () => {
    assertBuilt();
    const worker = startWorker('sql-no-driver.mjs', POSTGRES_URL ? [POSTGRES_URL] : []);
    const line = await worker.waitFor((l) => l.startsWith('{'));
    const exit = await worker.exited;
    expect(exit.code, exit.stderr).toBe(0);
    const report = JSON.parse(line);
    for (const key of ['sqliteMissing', 'sqliteMissingCjs']) {
      expect(report[key]).toEqual({ code: 'store_unavailable', isTollgateError: true, message: expect.stringContaining('Install better-sqlite3 (npm i better-sqlite3@12) to use sqliteStore') });
    }
    expect(report.postgresMissing).toEqual({ code: 'store_unavailable', isTollgateError: true, message: expect.stringContaining('Install pg (npm i pg) to use postgresStore') });
    expect(report.sqliteInjected).toEqual({ ok: 1 });
    if (POSTGRES_URL) expect(report.postgresInjected).toEqual({ ok: 1 });
  });
});
