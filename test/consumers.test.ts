// Installs the packed packages the way users do — tarballs from `npm pack` — into throwaway
// ESM and CommonJS projects, in JavaScript and TypeScript, and imports every public entry.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const packages = ['core', 'express', 'nestjs', 'ai'];
let dir: string;

const entries = ['@tollgate/core', '@tollgate/core/sqlite', '@tollgate/core/postgres', '@tollgate/core/redis', '@tollgate/core/testing', '@tollgate/express', '@tollgate/nestjs', '@tollgate/ai'];

const body = (load: string) => `
${load}
const core = mods['@tollgate/core'];
const checks = {
  sqlite: typeof mods['@tollgate/core/sqlite'].sqliteStore,
  postgres: typeof mods['@tollgate/core/postgres'].postgresStore,
  redis: typeof mods['@tollgate/core/redis'].redisCounters,
  testing: typeof mods['@tollgate/core/testing'].storeConformance,
  express: typeof mods['@tollgate/express'].meter,
  nestjs: typeof mods['@tollgate/nestjs'].TollgateModule,
  ai: typeof mods['@tollgate/ai'].tollgateMiddleware,
};
const tollgate = core.createTollgate({
  meters: [{ id: 'tokens', name: 'Tokens', aggregation: 'sum', field: 'values.tokens' }],
  limits: [{ id: 'day', name: 'Daily', meterId: 'tokens', limitValue: 10, period: 'day' }],
});
await tollgate.events.record({ customerId: 'c', eventType: 'llm.completion', values: { tokens: 10 } });
const decision = await tollgate.limits.check({ customerId: 'c' });
let code = null;
try { await tollgate.events.record({ customerId: '', eventType: 'x' }); } catch (e) { code = core.TollgateError.isInstance(e) ? e.code : 'not a TollgateError'; }
console.log(JSON.stringify({ checks, allowed: decision.allowed, used: decision.limits[0].used, code }));
`;

const esmLoad = `import 'reflect-metadata';\nconst mods = {};\nfor (const name of ${JSON.stringify(entries)}) mods[name] = await import(name);`;
const cjsLoad = `require('reflect-metadata');\nconst mods = {};\nfor (const name of ${JSON.stringify(entries)}) mods[name] = require(name);`;

const tsSource = `
import 'reflect-metadata';
import { createTollgate, TollgateError, type CheckResult, type LimitStatus } from '@tollgate/core';
import { sqliteStore } from '@tollgate/core/sqlite';
import { postgresStore } from '@tollgate/core/postgres';
import { redisCounters } from '@tollgate/core/redis';
import { storeConformance } from '@tollgate/core/testing';
import { meter } from '@tollgate/express';
import { TollgateModule } from '@tollgate/nestjs';
import { tollgateMiddleware } from '@tollgate/ai';

const tollgate = createTollgate({ meters: [{ id: 'r', name: 'R', aggregation: 'count', field: '*' }] });
const result: Promise<CheckResult> = tollgate.limits.check({ customerId: 'c' });
const statuses = (r: CheckResult): LimitStatus[] => r.limits;
export const used = [sqliteStore, postgresStore, redisCounters, storeConformance, meter, TollgateModule, tollgateMiddleware, TollgateError, result, statuses];
`;

function run(cmd: string, args: string[], cwd: string) {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' } });
}

describe('packed packages in consumer projects', () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-consumers-'));
    const tarballs = packages.map((p) => {
      const out = run('npm', ['pack', '--silent', '--pack-destination', dir], join(root, 'packages', p)).trim().split('\n').pop()!;
      return join(dir, out);
    });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer-root', private: true }));
    run('npm', ['install', '--prefer-offline', '--no-package-lock', ...tarballs, 'express@5', '@nestjs/common@12', '@nestjs/core@12', 'reflect-metadata', 'rxjs@7', 'ai@7', 'zod@4', '@types/express@5', '@types/node@20'], dir);
  }, 300_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const expectOutput = (stdout: string) => {
    const out = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(out.checks).toEqual({ sqlite: 'function', postgres: 'function', redis: 'function', testing: 'function', express: 'function', nestjs: 'function', ai: 'function' });
    expect(out).toMatchObject({ allowed: false, used: 10, code: 'invalid_request' });
  };

  test('an ESM JavaScript project imports every entry and runs a check and a record', () => {
    const p = join(dir, 'esm-js');
    mkdirSync(p);
    writeFileSync(join(p, 'package.json'), JSON.stringify({ type: 'module' }));
    writeFileSync(join(p, 'index.js'), body(esmLoad));
    expectOutput(run(process.execPath, ['index.js'], p));
  });

  test('a CommonJS JavaScript project requires every entry and runs a check and a record', () => {
    const p = join(dir, 'cjs-js');
    mkdirSync(p);
    writeFileSync(join(p, 'package.json'), JSON.stringify({ type: 'commonjs' }));
    writeFileSync(join(p, 'index.js'), `(async () => {${body(cjsLoad)}})();`);
    expectOutput(run(process.execPath, ['index.js'], p));
  });

  for (const flavour of ['esm', 'cjs'] as const) {
    test(`a TypeScript ${flavour.toUpperCase()} project type-checks against the published declarations`, () => {
      const p = join(dir, `ts-${flavour}`);
      mkdirSync(p);
      writeFileSync(join(p, 'package.json'), JSON.stringify({ type: flavour === 'esm' ? 'module' : 'commonjs' }));
      writeFileSync(join(p, 'index.ts'), tsSource);
      writeFileSync(
        join(p, 'tsconfig.json'),
        JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] }, files: ['index.ts'] }),
      );
      const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
      let output = '';
      try {
        output = run(process.execPath, [tsc, '-p', 'tsconfig.json'], p);
      } catch (e) {
        output = String((e as { stdout?: string }).stdout ?? e);
      }
      // Only our own packages' declarations must be clean; third-party typings are not ours to fix.
      const ours = output.split('\n').filter((l) => l.includes('@tollgate') || l.startsWith('index.ts'));
      expect(ours).toEqual([]);
    });
  }
});
