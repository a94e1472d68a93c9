import { fileURLToPath } from 'node:url';
import { clearOfWindowEnd } from '@tollgate/core/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startApp, storeVariants, type RunningApp } from '../../../test/support/start-app.js';

const cwd = fileURLToPath(new URL('..', import.meta.url));

for (const variant of storeVariants()) {
  describe(`express-chat on ${variant.name}`, () => {
    let app: RunningApp;
    beforeAll(async () => {
      app = await startApp(cwd, ['src/server.mjs'], { ...variant.env, REQUESTS_PER_MINUTE: '3', OPENAI_API_KEY: '' });
    });
    afterAll(() => app?.stop());

    const chat = (customer: string, message: string) =>
      fetch(`${app.url}/chat`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-customer-id': customer }, body: JSON.stringify({ message }) });

    test('answers chats with RateLimit headers until the per-minute limit answers 429', async () => {
      await clearOfWindowEnd(60_000, 5_000); // the requests below must share one minute
      const statuses: number[] = [];
      let last: Response | null = null;
      for (let i = 0; i < 6; i++) {
        last = await chat('acme', `question ${i}`);
        statuses.push(last.status);
        if (last.status === 429) break;
        expect((await last.json()).text).toContain(`question ${i}`);
        expect(last.headers.get('ratelimit')).toMatch(/remaining=\d+/);
      }
      expect(statuses).toEqual([200, 200, 200, 429]);
      expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
      const body = await last!.json();
      expect(body.error.code).toBe('limit_exceeded');

      const usage = await (await fetch(`${app.url}/usage`, { headers: { 'x-customer-id': 'acme' } })).json();
      expect(usage.summary.totalEvents).toBe(3);
      expect(usage.summary.values.tokens).toBeGreaterThan(0);
      expect(usage.byModel).toEqual([expect.objectContaining({ dimension: 'echo-1', totalEvents: 3 })]);
      expect(usage.limits.find((l: { limitId: string }) => l.limitId === 'requests-per-minute')).toMatchObject({ used: 3, remaining: 0 });
    });

    test('another customer has its own limits', async () => {
      expect((await chat('globex', 'hi')).status).toBe(200);
    });

    test('asks for a customer', async () => {
      const res = await fetch(`${app.url}/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(res.status).toBe(401);
    });
  });
}
