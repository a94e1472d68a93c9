import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { memoryStore, type Store, type Tollgate } from '@tollgate/core';
import type { Express } from 'express';
import { vi } from 'vitest';

/** A memory store whose counters can be made to fail, to act out a store outage. */
export function flakyStore(): { store: Store; fail: (on: boolean) => void } {
  const inner = memoryStore();
  let failing = false;
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'apply') {
        return (...args: unknown[]) => (failing ? Promise.reject(new Error('connection refused')) : (value as (...a: unknown[]) => unknown).apply(target, args));
      }
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store, fail: (on) => { failing = on; } };
}

/** Listens on 127.0.0.1 once, so concurrent supertest requests share one server. */
export async function listen(app: Express): Promise<http.Server & { url: string }> {
  const server = http.createServer(app);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return Object.assign(server, { url: `http://127.0.0.1:${port}` });
}

export async function close(server: http.Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

/** Events recorded for a customer, newest first. */
export async function recorded(tollgate: Tollgate, customerId: string) {
  return (await tollgate.events.list({ customerId })).data;
}

/** Waits until `count` events are recorded for the customer (recording follows the response). */
export async function waitForEvents(tollgate: Tollgate, customerId: string, count: number) {
  return vi.waitFor(async () => {
    const events = await recorded(tollgate, customerId);
    if (events.length !== count) throw new Error(`expected ${count} events, have ${events.length}`);
    return events;
  }, { timeout: 2000, interval: 5 });
}

/** Lets the after-response work run, for assertions that nothing happened. */
export function afterResponse(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 30));
}

/** Usage of every applicable limit, holds included. */
export async function usage(tollgate: Tollgate, customerId: string): Promise<Record<string, number>> {
  const { limits } = await tollgate.limits.check({ customerId });
  return Object.fromEntries(limits.map((l) => [l.limitId, l.used]));
}

export function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}
