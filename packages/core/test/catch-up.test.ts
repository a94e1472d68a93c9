import { ReplyError } from 'ioredis';
import { describe, expect, test } from 'vitest';
import { TollgateError } from '@tollgate/core';
import { canClear } from '../src/catch-up.js';

// Which failed counter updates are worth applying again: the Redis suite shows both kinds end to
// end (out of memory, WRONGTYPE); this table holds every other kind of error the engine can see.
describe('canClear', () => {
  test.each(['OOM command not allowed', 'BUSY Redis is busy running a script', 'LOADING Redis is loading', 'TRYAGAIN Multiple keys request during rehashing', 'CLUSTERDOWN The cluster is down', 'MASTERDOWN Link with MASTER is down', 'READONLY You can\'t write against a read only replica.', 'NOREPLICAS Not enough good replicas', 'MISCONF Redis is configured to save RDB snapshots'])(
    'a Redis reply that passes: %s',
    (message) => expect(canClear(new ReplyError(message))).toBe(true),
  );

  test.each(['ERR user_script:12: Script attempted to access nonexistent global variable', 'WRONGTYPE Operation against a key holding the wrong kind of value', 'ERR value is not a valid float'])(
    'a Redis reply given every time: %s',
    (message) => expect(canClear(new ReplyError(message))).toBe(false),
  );

  test('a timeout passes; a store error without a cause, or caused by a final reply, does not', () => {
    expect(canClear(new TollgateError('store_timeout', 'slow'))).toBe(true);
    expect(canClear(new TollgateError('store_unavailable', 'This postgresStore was closed.'))).toBe(false);
    expect(canClear(new TollgateError('store_unavailable', 'could not prepare', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }) }))).toBe(true);
    expect(canClear(new TollgateError('store_unavailable', 'script', { cause: new ReplyError('ERR syntax error') }))).toBe(false);
    expect(canClear(new TollgateError('invalid_request', 'bad'))).toBe(false);
  });

  test('a lost connection passes', () => {
    expect(canClear(new Error('Connection is closed.'))).toBe(true);
    expect(canClear(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toBe(true);
  });
});
