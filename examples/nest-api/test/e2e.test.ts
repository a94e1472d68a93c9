import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clearOfWindowEnd } from '@tollgate/core/testing';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { startApp, storeVariants, type RunningApp } from '../../../test/support/start-app.js';

const cwd = fileURLToPath(new URL('..', import.meta.url));
const root = join(cwd, '../..');

function newest(dir: string): number {
  let mtime = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    mtime = Math.max(mtime, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return mtime;
}

// The app runs from its compiled dist/, as a user starts it. The root `npm test` builds first;
// building here when dist/ is missing or older than src/ keeps `vitest run` alone honest.
beforeAll(() => {
  const main = join(cwd, 'dist/main.js');
  const built = [main, join(root, 'packages/core/dist/index.cjs'), join(root, 'packages/nestjs/dist/index.cjs')].every(existsSync);
  if (built && statSync(main).mtimeMs >= newest(join(cwd, 'src'))) return;
  try {
    execFileSync('npx', ['turbo', 'run', 'build', '--filter=@tollgate-examples/nest-api', '--output-logs=errors-only'], { cwd: root, encoding: 'utf8', stdio: 'pipe' });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`Building @tollgate-examples/nest-api failed:\n${stdout ?? ''}${stderr ?? ''}`);
  }
}, 180_000);

interface LimitStatus { limitId: string; used: number; remaining: number; exceeded: boolean }
interface ChatReply { text: string; model: string; usage: { totalTokens: number } }
interface Denial { error: { code: string; limits: LimitStatus[] } }
interface UsageReport {
  summary: { totalEvents: number; values: { tokens?: number } };
  byModel: Array<{ dimension: string; totalEvents: number }>;
  limits: LimitStatus[];
}

const json = <T>(res: Response) => res.json() as Promise<T>;
const limit = (limits: LimitStatus[], id: string) => limits.find((l) => l.limitId === id);

for (const variant of storeVariants()) {
  describe(`nest-api on ${variant.name}`, () => {
    let app: RunningApp;
    beforeAll(async () => {
      app = await startApp(cwd, ['dist/main.js'], { ...variant.env, REQUESTS_PER_MINUTE: '3', DAILY_TOKENS: '2000', OPENAI_API_KEY: '' });
    });
    afterAll(() => app?.stop());

    const chat = (customer: string | null, message: string) =>
      fetch(`${app.url}/chat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(customer ? { 'x-customer-id': customer } : {}) },
        body: JSON.stringify({ message }),
      });
    const usage = async (customer: string) => json<UsageReport>(await fetch(`${app.url}/usage`, { headers: { 'x-customer-id': customer } }));

    test('answers chats with RateLimit headers until the per-minute limit answers 429, then reports usage', async () => {
      await clearOfWindowEnd(60_000, 5_000); // the requests below must share one minute
      const statuses: number[] = [];
      let last: Response | null = null;
      for (let i = 0; i < 6; i++) {
        last = await chat('acme', `question ${i}`);
        statuses.push(last.status);
        if (last.status === 429) break;
        const reply = await json<ChatReply>(last);
        expect(reply.text).toContain(`question ${i}`);
        expect(reply).toMatchObject({ model: 'echo-1', usage: { totalTokens: expect.any(Number) } });
        expect(last.headers.get('ratelimit')).toMatch(/remaining=\d+/);
      }
      expect(statuses).toEqual([200, 200, 200, 429]);
      expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
      const denial = await json<Denial>(last!);
      expect(denial.error.code).toBe('limit_exceeded');
      expect(limit(denial.error.limits, 'requests-per-minute')).toMatchObject({ used: 3, remaining: 0 });

      // Recorded by the interceptor as each answer goes out, so poll rather than race it.
      const report = await vi.waitFor(async () => {
        const body = await usage('acme');
        expect(body.summary.totalEvents).toBe(3);
        return body;
      });
      expect(report.summary.values.tokens).toBeGreaterThan(0);
      expect(report.byModel).toEqual([expect.objectContaining({ dimension: 'echo-1', totalEvents: 3 })]);
      expect(limit(report.limits, 'requests-per-minute')).toMatchObject({ used: 3, remaining: 0 });
      expect(limit(report.limits, 'daily-tokens')).toMatchObject({ used: report.summary.values.tokens });
    });

    test('records the tokens the model reported, and the daily token limit answers 429 once they run out', async () => {
      // About 1,000 tokens a chat against 2,000 a day: the first two fit the 500-token estimate;
      // the second goes over (the model used more than estimated), so the third is denied.
      const long = 'tell me more '.repeat(160);
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push(await chat('umbrella', long));
      expect(answers.map((a) => a.status)).toEqual([200, 200, 429]);
      const reported = (await Promise.all(answers.slice(0, 2).map((a) => json<ChatReply>(a)))).map((r) => r.usage.totalTokens);
      const denial = await json<Denial>(answers[2]);
      expect(limit(denial.error.limits, 'daily-tokens')).toMatchObject({ remaining: 0, exceeded: true });

      const report = await vi.waitFor(async () => {
        const body = await usage('umbrella');
        expect(body.summary.totalEvents).toBe(2);
        return body;
      });
      expect(report.summary.values.tokens).toBe(reported[0] + reported[1]);
      // One record crossed both the 80 % alert threshold and the limit: both alerts are logged.
      await vi.waitFor(() => {
        expect(app.output()).toMatch(/\[alert\] limit\.threshold_reached daily-tokens customer=umbrella/);
        expect(app.output()).toMatch(/\[alert\] limit\.exceeded daily-tokens customer=umbrella/);
      });
    });

    test('another customer has its own limits', async () => {
      expect((await chat('globex', 'hi')).status).toBe(200);
    });

    test('asks for a customer', async () => {
      const chatRes = await chat(null, 'hi');
      expect(chatRes.status).toBe(401);
      expect((await json<Denial>(chatRes)).error.code).toBe('customer_required');
      const usageRes = await fetch(`${app.url}/usage`);
      expect(usageRes.status).toBe(401);
      expect((await json<Denial>(usageRes)).error.code).toBe('customer_required');
    });

    test('GET /chat/model opts out of metering: no customer needed, nothing recorded', async () => {
      const res = await fetch(`${app.url}/chat/model`, { headers: { 'x-customer-id': 'initech' } });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ provider: 'local', modelId: 'echo-1' });
      expect(res.headers.get('ratelimit')).toBeNull();
      expect((await fetch(`${app.url}/chat/model`)).status).toBe(200);
      const report = await usage('initech');
      expect(report.summary.totalEvents).toBe(0);
      expect(limit(report.limits, 'requests-per-minute')).toMatchObject({ used: 0 });
    });
  });
}
