import { fileURLToPath } from 'node:url';
import { clearOfWindowEnd } from '@tollgate/core/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startApp, storeVariants, type RunningApp } from '../../../test/support/start-app.js';

const cwd = fileURLToPath(new URL('..', import.meta.url));

for (const variant of storeVariants()) {
  describe(`ai-sdk-chat on ${variant.name}`, () => {
    let app: RunningApp;
    beforeAll(async () => {
      app = await startApp(cwd, ['src/server.mjs'], { ...variant.env, REQUESTS_PER_MINUTE: '3', OPENAI_API_KEY: '' });
    });
    afterAll(() => app?.stop());

    const post = (path: string, customer: string, message: string) =>
      fetch(`${app.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-customer-id': customer }, body: JSON.stringify({ message }) });

    test('answers chats until the per-minute limit answers 429, then reports usage', async () => {
      await clearOfWindowEnd(60_000, 5_000); // the requests below must share one minute
      const statuses: number[] = [];
      let denial: { error: { code: string; limits: Array<{ limitId: string; remaining: number }> } } | null = null;
      for (let i = 0; i < 6 && !denial; i++) {
        const res = await post('/chat', 'acme', `question ${i}`);
        statuses.push(res.status);
        if (res.status === 429) denial = await res.json();
        else expect((await res.json()).text).toContain(`question ${i}`);
      }
      expect(statuses).toEqual([200, 200, 200, 429]);
      expect(denial!.error.code).toBe('limit_exceeded');
      expect(denial!.error.limits.find((l) => l.limitId === 'requests-per-minute')).toMatchObject({ remaining: 0 });

      const usage = await (await fetch(`${app.url}/usage`, { headers: { 'x-customer-id': 'acme' } })).json();
      expect(usage.summary.totalEvents).toBe(3);
      expect(usage.summary.values.totalTokens).toBeGreaterThan(0);
      expect(usage.byModel).toEqual([expect.objectContaining({ dimension: 'echo-1', totalEvents: 3 })]);
    });

    test('streams an answer and records it once it ends', async () => {
      const res = await post('/chat/stream', 'globex', 'stream me');
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('stream me');
      // The event is committed as the stream ends, a moment after the last byte.
      let events = 0;
      for (let i = 0; i < 40 && events === 0; i++) {
        events = (await (await fetch(`${app.url}/usage`, { headers: { 'x-customer-id': 'globex' } })).json()).summary.totalEvents;
        if (events === 0) await new Promise((r) => setTimeout(r, 50));
      }
      expect(events).toBe(1);
    });

    test('asks for a customer', async () => {
      const res = await fetch(`${app.url}/usage`);
      expect(res.status).toBe(401);
    });
  });
}
