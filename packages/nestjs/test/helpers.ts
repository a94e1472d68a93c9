import 'reflect-metadata';
import type { INestApplication, ModuleMetadata } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { memoryStore, type Store, type Tollgate } from '@tollgate/core';
import { vi } from 'vitest';

export type Platform = 'express' | 'fastify';
export const platforms: Platform[] = ['express', 'fastify'];

/** Boots a real Nest app on the platform, listening on 127.0.0.1. */
export async function boot(platform: Platform, metadata: ModuleMetadata): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule(metadata).compile();
  const app = platform === 'express'
    ? moduleRef.createNestApplication(new ExpressAdapter(), { logger: false })
    : moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: false });
  await app.listen(0, '127.0.0.1');
  return app;
}

export function url(app: INestApplication): string {
  const address = app.getHttpServer().address();
  return `http://127.0.0.1:${address.port}`;
}

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

export async function recorded(tollgate: Tollgate, customerId: string) {
  return (await tollgate.events.list({ customerId })).data;
}

/** Waits until `count` events are recorded for the customer. */
export async function waitForEvents(tollgate: Tollgate, customerId: string, count: number) {
  return vi.waitFor(async () => {
    const events = await recorded(tollgate, customerId);
    if (events.length !== count) throw new Error(`expected ${count} events, have ${events.length}`);
    return events;
  }, { timeout: 2000, interval: 5 });
}

export function afterResponse(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 30));
}

export async function usage(tollgate: Tollgate, customerId: string): Promise<Record<string, number>> {
  const { limits } = await tollgate.limits.check({ customerId });
  return Object.fromEntries(limits.map((l) => [l.limitId, l.used]));
}

export function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}
