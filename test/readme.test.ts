// The root README's quick start, run as written, so it cannot drift from what works.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(`${root}README.md`, 'utf8');
const scripts = JSON.parse(readFileSync(`${root}package.json`, 'utf8')).scripts as Record<string, string>;

function quickStart(): string[] {
  const section = readme.split(/^## /m).find((s) => s.startsWith('Quick start'));
  const block = section && /```sh\n([\s\S]*?)```/.exec(section);
  if (!block) throw new Error('README.md has no "## Quick start" section with a ```sh block');
  return block[1].split('\n').map((l) => l.replace(/#.*$/, '').trim()).filter(Boolean);
}

describe('README quick start', () => {
  const commands = quickStart();

  test('is install, demo and test, each a real npm command', () => {
    expect(commands).toEqual(['npm install', 'npm run demo', 'npm test']);
    expect(scripts.demo).toBeTruthy();
    expect(scripts.test).toBeTruthy();
  });

  test('on a fresh clone, npm install then npm run demo run as written and show the tour', () => {
    // A new user's path: a clean clone of what is committed, nothing built, nothing installed.
    // `npm test` is the command running this very test; the others run for real.
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-readme-'));
    try {
      execFileSync('git', ['clone', '--quiet', '--depth', '1', `file://${root}`, dir], { stdio: 'ignore' });
      for (const command of commands.filter((c) => c !== 'npm test')) {
        const [cmd, ...args] = command.split(/\s+/);
        const extra = command === 'npm install' ? ['--prefer-offline', '--no-audit', '--no-fund'] : [];
        const out = execFileSync(cmd, [...args, ...extra], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 540_000 });
        if (command === 'npm run demo') {
          expect(out).toContain('allowed=false');
          expect(out).toMatch(/5 allowed, 15 denied/);
          expect(out).toMatch(/claude-haiku\s+\d+ events/);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 900_000);
});
