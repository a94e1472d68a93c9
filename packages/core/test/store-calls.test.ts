// How the engine calls its counters store: deadlines on shared stores, and the synchronous path
// it takes only for the memory store used as it is.
import { describe, expect, test } from 'vitest';
import { TollgateError, createTollgate } from '@tollgate/core';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Deadlines } from '../src/deadlines.js';
import { assertBuilt } from './fixtures/sql-processes.js';

const later = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));
const never = () => new Promise<never>(() => {});

describe('store call deadlines (one timer for every pending call)', () => {
  test('a call that answers in time keeps its answer or its error; one that does not gets store_timeout', async () => {
    const d = new Deadlines(60);
    const started = performance.now();
    const results = await Promise.allSettled([
      d.run(later(5, 'fast')),
      d.run(Promise.reject(new Error('boom'))),
      d.run(never()),
      d.run(later(30, 'in time')),
      d.run(never()),
    ]);
    expect(results[0]).toEqual({ status: 'fulfilled', value: 'fast' });
    expect(results[1]).toMatchObject({ status: 'rejected', reason: { message: 'boom' } });
    expect(results[3]).toEqual({ status: 'fulfilled', value: 'in time' });
    for (const i of [2, 4]) {
      expect(results[i].status).toBe('rejected');
      const reason = (results[i] as PromiseRejectedResult).reason;
      expect(TollgateError.isInstance(reason) && reason.code).toBe('store_timeout');
    }
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(55);
    expect(elapsed).toBeLessThan(1000);
  });

  test('calls started later expire later, each after its own timeout', async () => {
    const d = new Deadlines(50);
    const expiredAt: number[] = [];
    const t0 = performance.now();
    const first = d.run(never()).catch(() => expiredAt.push(performance.now() - t0));
    await later(30, null);
    const second = d.run(never()).catch(() => expiredAt.push(performance.now() - t0));
    await Promise.all([first, second]);
    expect(expiredAt[0]).toBeGreaterThanOrEqual(45);
    expect(expiredAt[0]).toBeLessThan(75);
    expect(expiredAt[1]).toBeGreaterThanOrEqual(75);
  });

  test('a late answer after the timeout changes nothing and raises no unhandled rejection', async () => {
    const d = new Deadlines(20);
    const late = new Promise<string>((_, reject) => setTimeout(() => reject(new Error('late')), 40));
    await expect(d.run(late)).rejects.toMatchObject({ code: 'store_timeout' });
    await later(40, null);
  });

  test('storeTimeoutMs must be a positive number', () => {
    for (const storeTimeoutMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => createTollgate({ storeTimeoutMs })).toThrow(expect.objectContaining({ code: 'invalid_request', message: expect.stringContaining('storeTimeoutMs') }));
    }
  });
});

describe('store call deadlines do not outlive the calls', () => {
  test('once every call has settled no timer is left, so a process can exit', async () => {
    assertBuilt();
    // A shared store with a 2-minute timeout: after its calls, the process must exit at once.
    const code = `
      import { createTollgate } from '@tollgate/core';
      import { sqliteStore } from '@tollgate/core/sqlite';
      const tollgate = createTollgate({
        store: sqliteStore({ path: ':memory:' }),
        storeTimeoutMs: 120000,
        meters: [{ id: 'm', name: 'M', aggregation: 'count', field: '*' }],
        limits: [{ id: 'l', name: 'L', meterId: 'm', limitValue: 10, period: 'day' }],
      });
      await tollgate.events.record({ customerId: 'c', eventType: 'x' });
      const r = await tollgate.reserve({ customerId: 'c', eventType: 'x', estimate: {} });
      await r.commit();
      console.log((await tollgate.limits.check({ customerId: 'c' })).limits[0].used);
      await tollgate.close();`;
    const started = Date.now();
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: fileURLToPath(new URL('.', import.meta.url)), encoding: 'utf8', timeout: 30_000 });
    expect(child.stderr).toBe('');
    expect(child.stdout.trim()).toBe('2');
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});

describe('the memory store answers synchronously only when used as it is', () => {
  test("a wrapped memory store's apply sees every operation", async () => {
    const { memoryStore } = await import('@tollgate/core');
    const inner = memoryStore();
    const seen: string[] = [];
    const store = new Proxy(inner, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop === 'apply') return (op: { type: string }) => (seen.push(op.type), value.call(target, op));
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const tollgate = createTollgate({
      store,
      meters: [{ id: 'm', name: 'M', aggregation: 'count', field: '*' }],
      limits: [{ id: 'l', name: 'L', meterId: 'm', limitValue: 10, period: 'day' }],
    });
    await tollgate.limits.check({ customerId: 'c' });
    const r = await tollgate.reserve({ customerId: 'c', eventType: 'x', estimate: {} });
    await r.commit();
    await tollgate.events.record({ customerId: 'c', eventType: 'x' });
    expect(seen).toEqual(['check', 'reserve', 'record', 'record']);
    expect((await tollgate.limits.check({ customerId: 'c' })).limits[0].used).toBe(2);
  });
});
