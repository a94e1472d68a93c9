import { Injectable } from '@nestjs/common';
import { Tollgate } from '@tollgate/nestjs';

@Injectable()
export class UsageService {
  constructor(private readonly tollgate: Tollgate) {}

  /** The customer's usage so far, by model, and where it stands against each limit. */
  async report(customerId: string) {
    const [summary, byModel, limits] = await Promise.all([
      this.tollgate.events.getSummary({ customerId }),
      this.tollgate.events.getBreakdown({ customerId, groupBy: 'model' }),
      this.tollgate.limits.check({ customerId, eventType: 'llm.completion' }),
    ]);
    return { customerId, summary, byModel: byModel.data, limits: limits.limits };
  }
}
