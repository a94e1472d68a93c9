// One Nest app (platform-express), one run: a bare route, @nestjs/throttler's guard (its memory
// storage) and @tollgate/nestjs `@Metered()` (memory store, request-count limit, check before and
// record after), plus `@Metered({ estimate: {} })` (an atomic reservation) for reference. Uses
// the BUILT packages. Decorators are applied as TypeScript would compile them.
// Run: npm run build && node bench/nest.mjs [--quick]
import 'reflect-metadata';
import { Controller, Get, Module, UseGuards } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ThrottlerGuard, ThrottlerModule } from '@nestjs/throttler';
import { Metered, TollgateModule } from '@tollgate/nestjs';
import { CUSTOMER_HEADER, announce, compareRoutes, serving, targetLine } from './lib/http-load.mjs';

function decorateMethod(target, key, decorators) {
  const descriptor = Reflect.decorate(decorators, target.prototype, key, Object.getOwnPropertyDescriptor(target.prototype, key));
  Object.defineProperty(target.prototype, key, descriptor);
}

if (serving) {
  class BenchController {
    bare() { return { ok: true }; }
    throttler() { return { ok: true }; }
    tollgate() { return { ok: true }; }
    tollgateReserve() { return { ok: true }; }
  }
  decorateMethod(BenchController, 'bare', [Get('bare')]);
  decorateMethod(BenchController, 'throttler', [Get('throttler'), UseGuards(ThrottlerGuard)]);
  decorateMethod(BenchController, 'tollgate', [Get('tollgate'), Metered()]);
  decorateMethod(BenchController, 'tollgateReserve', [Get('tollgate-reserve'), Metered({ estimate: {} })]);
  const Bench = Reflect.decorate([Controller()], BenchController);

  class BenchModule {}
  const App = Reflect.decorate([Module({
    imports: [
      ThrottlerModule.forRoot({ throttlers: [{ ttl: 60_000, limit: 1e9 }] }),
      TollgateModule.forRoot({
        tollgate: {
          meters: [{ id: 'requests', name: 'Requests', aggregation: 'count', field: '*' }],
          limits: [{ id: 'requests-per-minute', name: 'Requests per minute', meterId: 'requests', limitValue: 1e9, period: 'minute' }],
        },
        customerId: (context) => context.switchToHttp().getRequest().headers[CUSTOMER_HEADER],
      }),
    ],
    controllers: [Bench],
  })], BenchModule);

  const app = await NestFactory.create(App, { logger: false });
  await app.listen(0, '127.0.0.1');
  announce(app.getHttpServer());
} else {
  const results = await compareRoutes({
    title: '@tollgate/nestjs vs bare Nest and @nestjs/throttler (platform-express)',
    script: new URL(import.meta.url).pathname,
    routes: [
      { name: 'bare', path: '/bare', role: 'bare' },
      { name: '@nestjs/throttler', path: '/throttler', role: 'peer' },
      { name: '@Metered() (check + record)', path: '/tollgate' },
      { name: '@Metered({ estimate: {} }) (reserve + commit)', path: '/tollgate-reserve' },
    ],
  });
  const t = results['@Metered() (check + record)'];
  console.log(`\nTarget (req/s of @Metered(), check + record):\n- ${targetLine('≥ @nestjs/throttler', t.vsPeer, 1)}\n\nvs bare Nest: ${(t.vsBare.median * 100).toFixed(1)}% (no target)`);
}
