import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const dist = join(root, 'packages/nestjs/dist/index.cjs');

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

// The root `npm test` builds first; building here too keeps `vitest run` alone honest.
beforeAll(() => {
  const stale = !existsSync(dist)
    || statSync(dist).mtimeMs < Math.max(newestSource(join(root, 'packages/nestjs/src')), newestSource(join(root, 'packages/core/src')));
  if (!stale) return;
  try {
    execFileSync('npx', ['turbo', 'run', 'build', '--filter=@tollgate/nestjs', '--output-logs=errors-only'], { cwd: root, encoding: 'utf8', stdio: 'pipe' });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`Building @tollgate/nestjs failed:\n${stdout ?? ''}${stderr ?? ''}`);
  }
}, 180_000);

describe('a CommonJS Nest app (the Nest CLI default)', () => {
  it('require()s the built @tollgate/nestjs and meters a route', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [join(root, 'packages/nestjs/test/fixtures/cjs-consumer.cjs')], { cwd: root, timeout: 60_000 });
    const result = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(result.resolved).toBe(dist);
    expect(result.answers.map((a: { status: number }) => a.status)).toEqual([200, 200, 429]);
    expect(result.answers.map((a: { remaining: string }) => a.remaining)).toEqual(['1', '0', '0']);
    expect(result.answers[2].body.error).toMatchObject({ code: 'limit_exceeded', limits: [{ limitId: 'rpm', used: 2 }] });
    expect(result.sameInstance).toBe(true);
  }, 240_000);
});
