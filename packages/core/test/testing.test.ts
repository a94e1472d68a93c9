import { expect, test } from 'vitest';
import { clearOfWindowEnd } from '@tollgate/core/testing';

test('clearOfWindowEnd returns with at least the margin left in the current window', async () => {
  for (let i = 0; i < 3; i++) {
    await clearOfWindowEnd(1000, 900);
    // 900 of every 1000 ms are too close to the window end: most rounds have to wait.
    expect(1000 - (Date.now() % 1000)).toBeGreaterThan(850);
    await new Promise((resolve) => setTimeout(resolve, 170 * (i + 1)));
  }
});
