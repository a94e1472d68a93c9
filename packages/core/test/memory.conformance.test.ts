import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { memoryStore } from '@tollgate/core';
import { storeConformance } from '@tollgate/core/testing';

storeConformance({ describe, test, expect, beforeAll, afterAll }, {
  name: 'memory',
  create: () => ({ store: memoryStore() }),
  // One process only: two engines would share the object, not a database.
  groups: { shared: false },
});
