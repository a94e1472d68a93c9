import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTollgate, memoryStore, type Tollgate } from '@tollgate/core';
import { redisCounters } from '@tollgate/core/redis';
import { storeConformance } from '@tollgate/core/testing';
import { freePort, redisServerInstalled, startRedisServer, until } from './fixtures/redis-server.js';

// DESIGN §6: a customer's keys carry a {customerId} hash tag, so one script updates them
// atomically on Redis Cluster; different customers' keys live on different nodes, and the
// counters must never send one script keys of two customers. This suite starts a three-master
// cluster of its own (redis-server in cluster mode on free ports) and runs the counters on it.

const installed = redisServerInstalled;
if (!installed && process.env.CI === 'true') throw new Error('CI=true but redis-server or redis-cli is missing: the Redis Cluster suite must run in CI.');
if (!installed) console.warn('Skipping the Redis Cluster suite: it starts three redis-server processes in cluster mode; install redis-server (which brings redis-cli) to run it.');
const suite = installed ? describe : describe.skip;

let dir = '';
const servers: ChildProcess[] = [];
const ports: number[] = [];
let client: Cluster;
let prefixes = 0;
const newPrefix = () => `tollgate-cluster-test:${prefixes++}:`;

suite('redis counters on a Redis Cluster of three masters', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-redis-cluster-'));
    for (let i = 0; i < 3; i++) ports.push(await freePort(ports));
    for (const port of ports) {
      servers.push(await startRedisServer(port, ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--dir', dir]));
    }
    await promisify(execFile)('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    for (const port of ports) {
      await until(`the cluster state on port ${port}`, async () => (await promisify(execFile)('redis-cli', ['-p', String(port), 'cluster', 'info'])).stdout.includes('cluster_state:ok'));
    }
    client = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })));
    await until('the cluster client', async () => (await client.ping()) === 'PONG');
  }, 60_000);

  afterAll(async () => {
    await client?.quit().catch(() => {});
    for (const server of servers) server.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  storeConformance({ describe, test, expect, beforeAll, afterAll }, {
    name: 'redis counters on a Redis Cluster beside a memory ledger',
    create: () => ({ store: memoryStore(), counters: redisCounters({ client, prefix: newPrefix() }) }),
  });

  test("keeps each customer's keys on one node, spreads customers over the nodes, and answers like the memory store", async () => {
    const meters = [
      { id: 'tokens', name: 'Tokens', aggregation: 'sum' as const, field: 'values.tokens' },
      { id: 'users', name: 'Users', aggregation: 'unique' as const, field: 'dimensions.user' },
    ];
    const limits = [
      { id: 'daily', name: 'Daily tokens', meterId: 'tokens', limitValue: 100, period: 'day' as const },
      { id: 'hourly', name: 'Hourly tokens', meterId: 'tokens', limitValue: 60, period: 'hour' as const },
      { id: 'seats', name: 'Seats', meterId: 'users', limitValue: 3, period: 'month' as const },
    ];
    const prefix = newPrefix();
    // One fixed clock: no window may end between the two engines' turns.
    const at = Date.now();
    const clustered = createTollgate({ store: memoryStore(), counters: redisCounters({ client, prefix }), meters, limits, now: () => at });
    const reference = createTollgate({ meters, limits, now: () => at });
    const customers = Array.from({ length: 24 }, (_, i) => `cus_${i}`);

    const both = async <T>(run: (tg: Tollgate) => Promise<T>): Promise<[T, T]> => [await run(clustered), await run(reference)];
    const usage = (tg: Tollgate) => Promise.all(customers.map(async (c) => (await tg.limits.check({ customerId: c })).limits.map((l) => [l.limitId, l.used])));

    // One batch over every customer: one script per customer.
    await both((tg) => tg.events.batchIngest({ events: customers.flatMap((c, i) => [{ customerId: c, eventType: 'llm', values: { tokens: i % 7 }, dimensions: { user: 'u1' } }, { customerId: c, eventType: 'llm', values: { tokens: 5 }, dimensions: { user: `u${i % 3}` } }]) }));
    // Concurrent checks of every customer in one tick: queued together, run per customer.
    const [checks, expected] = await both((tg) => Promise.all(customers.map((c) => tg.limits.check({ customerId: c, estimate: { tokens: 50 }, dimensions: { user: 'u9' } }))));
    expect(checks.map((d) => d.reason)).toEqual(customers.map(() => 'limits'));
    expect(checks.map((d) => [d.allowed, d.limits.map((l) => l.used)])).toEqual(expected.map((d) => [d.allowed, d.limits.map((l) => l.used)]));
    // Reservations racing for the last units of every customer at once: exactly as many as fit.
    const [held, heldExpected] = await both((tg) => Promise.all(customers.flatMap((c) => Array.from({ length: 6 }, () => tg.reserve({ customerId: c, eventType: 'llm', estimate: { tokens: 10 } })))));
    expect(held.map((r) => r.reason)).toEqual(held.map(() => 'limits'));
    expect(held.filter((r) => r.allowed).length).toBe(heldExpected.filter((r) => r.allowed).length);
    await Promise.all(held.filter((r) => r.allowed).map((r, i) => (i % 2 ? r.release() : r.commit({ values: { tokens: 3 } }))));
    await Promise.all(heldExpected.filter((r) => r.allowed).map((r, i) => (i % 2 ? r.release() : r.commit({ values: { tokens: 3 } }))));
    // A second batch over every customer, now that their counters exist in Redis: a record the
    // cluster refused would leave them short (the engine keeps the ledger's events either way).
    await both((tg) => tg.events.batchIngest({ events: customers.map((c, i) => ({ customerId: c, eventType: 'llm', values: { tokens: 1 + (i % 4) }, dimensions: { user: 'u2' } })) }));
    const [after, afterExpected] = await both(usage);
    expect(after).toEqual(afterExpected);

    // Every key of a customer hashes to that customer's slot, and the customers use every node.
    const nodesUsed = new Set<string>();
    for (const node of client.nodes('master')) {
      const keys = await node.keys(`${prefix}*`);
      for (const key of keys) {
        const tag = /\{([^}]*)\}/.exec(key)?.[1];
        expect(tag, `key ${key} carries a hash tag`).toBeDefined();
        expect(Number(await node.cluster('KEYSLOT', key))).toBe(Number(await node.cluster('KEYSLOT', `{${tag}}`)));
      }
      if (keys.length > 0) nodesUsed.add(`${node.options.host}:${node.options.port}`);
    }
    expect(nodesUsed.size).toBe(3);
    await clustered.close();
    await reference.close();
  });
});
