import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { sqliteStore } from '@tollgate/core/sqlite';
import { storeConformance } from '@tollgate/core/testing';

const dir = mkdtempSync(join(tmpdir(), 'tollgate-sqlite-conformance-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

storeConformance({ describe, test, expect, beforeAll, afterAll }, {
  name: 'sqlite',
  create: () => {
    const store = sqliteStore({ path: join(dir, `store-${++n}.db`) });
    return { store, cleanup: () => store.close?.() };
  },
});
