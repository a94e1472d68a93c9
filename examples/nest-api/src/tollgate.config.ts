import { Logger } from '@nestjs/common';
import type { TollgateModuleOptions } from '@tollgate/nestjs';
import { customerIdOf } from './customer';
import { storeFromEnv } from './store';

const logger = new Logger('Tollgate');

/** What `TollgateModule` runs with: the store, what is metered, the limits, and who the customer is. */
export function tollgateOptions(env: NodeJS.ProcessEnv = process.env): TollgateModuleOptions {
  return {
    // Options rather than an instance: the module creates the engine and closes it (and its
    // store) when the app shuts down.
    tollgate: {
      store: storeFromEnv(env),
      meters: [
        { id: 'tokens', name: 'LLM tokens', aggregation: 'sum', field: 'values.tokens', eventFilter: { eventType: 'llm.completion' } },
        { id: 'chat-requests', name: 'Chat requests', aggregation: 'count', field: '*', eventFilter: { eventType: 'llm.completion' } },
      ],
      limits: [
        // What to change first: your plans' numbers.
        { id: 'daily-tokens', name: 'Tokens per day', meterId: 'tokens', limitValue: Number(env.DAILY_TOKENS ?? 20_000), period: 'day', alertThresholds: [80] },
        { id: 'requests-per-minute', name: 'Chat requests per minute', meterId: 'chat-requests', limitValue: Number(env.REQUESTS_PER_MINUTE ?? 5), period: 'minute' },
      ],
      // Wire this to email, Slack or your billing system.
      onAlert: (a) => logger.log(`[alert] ${a.type} ${a.limitId} customer=${a.customerId}: ${a.used} of ${a.limit} (${a.percentage}%)`),
    },
    customerId: (context) => customerIdOf(context.switchToHttp().getRequest()),
    standardHeaders: 'draft-7',
  };
}
