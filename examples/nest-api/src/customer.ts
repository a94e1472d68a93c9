import { createParamDecorator, UnauthorizedException, type ExecutionContext } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';

/**
 * Who is calling. What to change first: take the customer from your auth (an API key lookup,
 * a session, `request.user.orgId` set by your AuthGuard), not from a header anyone can send.
 */
export function customerIdOf(request: IncomingMessage): string | undefined {
  const id = request.headers['x-customer-id'];
  return typeof id === 'string' && id !== '' ? id : undefined;
}

/** The calling customer, for routes that are per customer but not metered; 401 without one. */
export const CustomerId = createParamDecorator((_data: unknown, context: ExecutionContext): string => {
  const id = customerIdOf(context.switchToHttp().getRequest());
  if (!id) throw new UnauthorizedException({ error: { code: 'customer_required', message: 'Send the customer in the x-customer-id header.' } });
  return id;
});
