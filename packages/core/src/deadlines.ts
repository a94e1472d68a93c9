import { TollgateError } from './errors.js';

interface Pending {
  at: number;
  reject: (error: TollgateError) => void;
  done: boolean;
}

/**
 * Fails store calls that take longer than `ms` with `store_timeout`, using one timer for all of
 * them instead of a timer, a race and a cleanup per call. Every call gets the same timeout, so
 * calls expire in the order they started: the queue is in deadline order and the timer only ever
 * waits for its head. Settled calls leave the queue when the timer next fires.
 */
export class Deadlines {
  private readonly queue: Pending[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly ms: number) {}

  run<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = { at: performance.now() + this.ms, reject, done: false };
      this.queue.push(pending);
      if (this.timer === null) this.arm(this.ms);
      promise.then(
        (value) => {
          pending.done = true;
          resolve(value);
        },
        (error: unknown) => {
          pending.done = true;
          reject(error);
        },
      );
    });
  }

  private arm(delay: number): void {
    this.timer = setTimeout(() => this.expire(), Math.max(0, Math.ceil(delay)));
  }

  private expire(): void {
    this.timer = null;
    const now = performance.now();
    const q = this.queue;
    while (this.head < q.length) {
      const p = q[this.head];
      if (!p.done) {
        if (p.at > now) break;
        p.done = true;
        p.reject(new TollgateError('store_timeout', `The counters store did not answer within ${this.ms} ms. Check its health or raise storeTimeoutMs.`));
      }
      this.head++;
    }
    if (this.head === q.length) {
      q.length = 0;
      this.head = 0;
      return;
    }
    if (this.head > 1024) {
      q.splice(0, this.head);
      this.head = 0;
    }
    this.arm(q[this.head].at - now);
  }
}
