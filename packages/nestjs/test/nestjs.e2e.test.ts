import 'reflect-metadata';
import http from 'node:http';
import {
  Body,
  Catch,
  Controller,
  Get,
  HttpException,
  Inject,
  Injectable,
  Post,
  RequestTimeoutException,
  Res,
  Sse,
  UseGuards,
  type ArgumentsHost,
  type CallHandler,
  type ExceptionFilter,
  type ExecutionContext,
  type INestApplication,
  type MessageEvent,
  type NestInterceptor,
} from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { APP_FILTER, APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { createTollgate, TollgateError, type CreateLimitInput, type Decision, type RequestMetering, type Tollgate as CoreTollgate } from '@tollgate/core';
import {
  Metered,
  Metering,
  SkipMetering,
  TOLLGATE,
  Tollgate,
  TollgateGuard,
  TollgateInterceptor,
  TollgateLimitExceededException,
  TollgateModule,
  type TollgateModuleOptions,
} from '@tollgate/nestjs';
import { catchError, from, interval, map, Observable, take, throwError, timeout, TimeoutError } from 'rxjs';
import request from 'supertest';
import { clearOfWindowEnd } from '@tollgate/core/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { afterResponse, boot, deferred, flakyStore, platforms, recorded, url, usage, waitForEvents, type Platform } from './helpers.js';

const meters = [
  { id: 'requests', name: 'Requests', aggregation: 'count' as const, field: '*' },
  { id: 'tokens', name: 'Tokens', aggregation: 'sum' as const, field: 'values.tokens' },
];
const rpm = (limitValue: number): CreateLimitInput => ({ id: 'rpm', name: 'Requests per minute', meterId: 'requests', limitValue, period: 'minute' });
const dailyTokens = (limitValue: number): CreateLimitInput => ({ id: 'daily-tokens', name: 'Daily tokens', meterId: 'tokens', limitValue, period: 'day' });

const customerFromHeader = (context: ExecutionContext) => context.switchToHttp().getRequest().headers['x-customer-id'];

interface ChatResult {
  text: string;
  usage: { totalTokens: number };
}

describe.each(platforms)('@tollgate/nestjs on platform-%s', (platform: Platform) => {
  let app: INestApplication | undefined;
  let tollgate: CoreTollgate;

  // Most tests count requests under a per-minute limit on the real clock.
  beforeEach(() => clearOfWindowEnd());

  afterEach(async () => {
    await app?.close();
    app = undefined;
    await tollgate?.close();
  });

  async function start(limits: CreateLimitInput[], metadata: { controllers: any[]; providers?: any[] }, options: Partial<TollgateModuleOptions> = {}) {
    tollgate = createTollgate({ meters, limits });
    app = await boot(platform, {
      imports: [TollgateModule.forRoot({ tollgate, customerId: customerFromHeader, ...options })],
      controllers: metadata.controllers,
      providers: metadata.providers ?? [],
    });
    return app;
  }

  it('the guard blocks at the limit with the Express adapter’s 429 body and headers', async () => {
    const handled = vi.fn();
    @Controller('items')
    class ItemsController {
      @Get()
      @Metered()
      list() {
        handled();
        return { items: [] };
      }
    }
    await start([rpm(2)], { controllers: [ItemsController] }, { standardHeaders: 'draft-7' });
    const server = app!.getHttpServer();
    const ok = await request(server).get('/items').set('x-customer-id', 'acme').expect(200, { items: [] });
    expect(ok.headers.ratelimit).toMatch(/^limit=2, remaining=2, reset=\d+$/); // a check: this request is not counted yet
    await waitForEvents(tollgate, 'acme', 1);
    await request(server).get('/items').set('x-customer-id', 'acme').expect(200);
    await waitForEvents(tollgate, 'acme', 2);
    const denied = await request(server).get('/items').set('x-customer-id', 'acme').expect(429).expect('content-type', /json/);
    expect(denied.body).toEqual({
      error: {
        code: 'limit_exceeded',
        message: expect.stringContaining('"Requests per minute" (2 of 2 per minute)'),
        limits: [expect.objectContaining({ limitId: 'rpm', used: 2, remaining: 0, allowed: false })],
      },
    });
    expect(denied.headers.ratelimit).toMatch(/^limit=2, remaining=0, reset=\d+$/);
    expect(denied.headers['ratelimit-policy']).toBe('2;w=60');
    expect(Number(denied.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(handled).toHaveBeenCalledTimes(2);
    await afterResponse();
    expect(await recorded(tollgate, 'acme')).toHaveLength(2);
  });

  it('the interceptor records what an async handler returned; the estimate is reserved before', async () => {
    const held: number[] = [];
    @Controller('chat')
    class ChatController {
      @Post()
      @Metered<ChatResult>({
        eventType: 'llm.completion',
        estimate: (context) => ({ tokens: context.switchToHttp().getRequest().body.max_tokens }),
        dimensions: (context) => ({ model: context.switchToHttp().getRequest().body.model }),
        values: (result) => ({ tokens: result.usage.totalTokens }),
      })
      async chat(@Body() body: { max_tokens: number }, @Metering() metering: RequestMetering): Promise<ChatResult> {
        held.push(metering.decision.limits[0].used);
        await new Promise((r) => setTimeout(r, 2));
        return { text: 'hi', usage: { totalTokens: Math.round(body.max_tokens / 10) } };
      }
    }
    await start([dailyTokens(1000)], { controllers: [ChatController] });
    const server = app!.getHttpServer();
    await request(server).post('/chat').set('x-customer-id', 'acme').send({ max_tokens: 900, model: 'small' }).expect(201, { text: 'hi', usage: { totalTokens: 90 } });
    const [event] = await waitForEvents(tollgate, 'acme', 1);
    expect(event).toMatchObject({ eventType: 'llm.completion', values: { tokens: 90 }, dimensions: { model: 'small' } });
    expect(held).toEqual([900]);
    expect(await usage(tollgate, 'acme')).toEqual({ 'daily-tokens': 90 });
    await request(server).post('/chat').set('x-customer-id', 'acme').send({ max_tokens: 950, model: 'small' }).expect(429);
  });

  it('records an Observable handler from its last value', async () => {
    @Controller('batch')
    class BatchController {
      @Get()
      @Metered({ values: (result: { done: number }) => ({ tokens: result.done }) })
      run(): Observable<{ done: number }> {
        return interval(1).pipe(take(3), map((i) => ({ done: (i + 1) * 10 })));
      }
    }
    await start([dailyTokens(1000)], { controllers: [BatchController] });
    await request(app!.getHttpServer()).get('/batch').set('x-customer-id', 'acme').expect(200, { done: 30 });
    const [event] = await waitForEvents(tollgate, 'acme', 1);
    expect(event.values).toEqual({ tokens: 30 });
  });

  it('a throwing handler records nothing and releases its hold', async () => {
    @Controller('chat')
    class ChatController {
      @Post()
      @Metered({ estimate: { tokens: 800 } })
      async chat() {
        throw new HttpException('model provider down', 502);
      }
    }
    await start([dailyTokens(1000)], { controllers: [ChatController] });
    await request(app!.getHttpServer()).post('/chat').set('x-customer-id', 'acme').expect(502);
    await request(app!.getHttpServer()).post('/chat').set('x-customer-id', 'acme').expect(502); // not 429: the first hold is gone
    await afterResponse();
    expect(await recorded(tollgate, 'acme')).toHaveLength(0);
    expect(await usage(tollgate, 'acme')).toEqual({ 'daily-tokens': 0 });
  });

  it('N concurrent requests for the last units: exactly as many 2xx as fit', async () => {
    @Controller('chat')
    class ChatController {
      @Post()
      @Metered({ eventType: 'llm.completion', estimate: { tokens: 100 } })
      async chat() {
        await new Promise((r) => setTimeout(r, 5));
        return { ok: true };
      }
    }
    await start([dailyTokens(1000), rpm(100)], { controllers: [ChatController] });
    await tollgate.events.record({ customerId: 'acme', eventType: 'llm.completion', values: { tokens: 650 } });
    const server = app!.getHttpServer();
    const results = await Promise.all(Array.from({ length: 20 }, () => request(server).post('/chat').set('x-customer-id', 'acme')));
    expect(results.filter((r) => r.status === 201)).toHaveLength(3);
    expect(results.filter((r) => r.status === 429)).toHaveLength(17);
    await waitForEvents(tollgate, 'acme', 4);
    expect(await usage(tollgate, 'acme')).toEqual({ 'daily-tokens': 950, rpm: 4 });
  });

  it('class-level @Metered applies to every route; a method’s options override key by key; @SkipMetering opts out', async () => {
    @Controller('api')
    @Metered({ eventType: 'api.call', dimensions: { area: 'api' } })
    class ApiController {
      @Get('plain')
      plain() {
        return 'plain';
      }

      @Get('heavy')
      @Metered({ eventType: 'api.heavy', estimate: { tokens: 50 } })
      heavy() {
        return 'heavy';
      }

      @Get('health')
      @SkipMetering()
      health() {
        return 'ok';
      }
    }
    await start([rpm(100)], { controllers: [ApiController] });
    const server = app!.getHttpServer();
    await request(server).get('/api/plain').set('x-customer-id', 'acme').expect(200);
    await request(server).get('/api/heavy').set('x-customer-id', 'acme').expect(200);
    const health = await request(server).get('/api/health').expect(200); // no customer needed
    expect(health.headers['ratelimit-limit']).toBeUndefined();
    const events = await waitForEvents(tollgate, 'acme', 2);
    const byType = Object.fromEntries(events.map((e) => [e.eventType, e]));
    expect(byType['api.call']).toMatchObject({ dimensions: { area: 'api' }, values: {} });
    expect(byType['api.heavy']).toMatchObject({ dimensions: { area: 'api' }, values: { tokens: 50 } });
    await afterResponse();
    expect(await recorded(tollgate, 'acme')).toHaveLength(2); // guard and interceptor applied twice, recorded once
  });

  it('answers 401 with the shared body when no customer is found', async () => {
    @Controller('me')
    class MeController {
      @Get()
      @Metered()
      me() {
        return 'me';
      }
    }
    await start([rpm(5)], { controllers: [MeController] });
    const res = await request(app!.getHttpServer()).get('/me').expect(401);
    expect(res.body).toEqual({ error: { code: 'customer_required', message: expect.any(String) } });
  });

  it('global APP_GUARD and APP_INTERCEPTOR meter every route; @SkipMetering opts out', async () => {
    @Controller()
    class AppController {
      @Get('a')
      a() {
        return 'a';
      }

      @Get('b')
      b() {
        return 'b';
      }

      @Get('health')
      @SkipMetering()
      health() {
        return 'ok';
      }
    }
    await start([rpm(2)], {
      controllers: [AppController],
      providers: [{ provide: APP_GUARD, useClass: TollgateGuard }, { provide: APP_INTERCEPTOR, useClass: TollgateInterceptor }],
    }, { eventType: 'api.call' });
    const server = app!.getHttpServer();
    await request(server).get('/a').set('x-customer-id', 'acme').expect(200);
    await waitForEvents(tollgate, 'acme', 1);
    await request(server).get('/b').set('x-customer-id', 'acme').expect(200);
    await waitForEvents(tollgate, 'acme', 2);
    await request(server).get('/a').set('x-customer-id', 'acme').expect(429);
    await request(server).get('/health').expect(200);
    expect((await recorded(tollgate, 'acme')).map((e) => e.eventType)).toEqual(['api.call', 'api.call']);
  });

  it('the guard alone (no interceptor) records by response status', async () => {
    @Controller()
    @UseGuards(TollgateGuard)
    class GuardedController {
      @Get('ok')
      ok() {
        return 'ok';
      }

      @Get('fail')
      fail() {
        throw new HttpException('nope', 400);
      }
    }
    await start([dailyTokens(1000)], { controllers: [GuardedController] });
    await request(app!.getHttpServer()).get('/ok').set('x-customer-id', 'acme').expect(200);
    await request(app!.getHttpServer()).get('/fail').set('x-customer-id', 'acme').expect(400);
    await waitForEvents(tollgate, 'acme', 1);
    await afterResponse();
    expect(await recorded(tollgate, 'acme')).toHaveLength(1);
  });

  it('exception filters see TollgateLimitExceededException, with the decision and headers', async () => {
    const seen: Decision[] = [];
    @Catch(TollgateLimitExceededException)
    class UpgradeFilter implements ExceptionFilter {
      catch(exception: TollgateLimitExceededException, host: ArgumentsHost) {
        seen.push(exception.decision);
        expect(exception.getStatus()).toBe(429);
        expect(exception.headers['Retry-After']).toBeDefined();
        const response = host.switchToHttp().getResponse();
        const body = { upgrade: 'https://example.com/pricing', used: exception.decision.limits[0].used };
        if (platform === 'fastify') response.status(402).send(body);
        else response.status(402).json(body);
      }
    }
    @Controller('x')
    class XController {
      @Get()
      @Metered({ estimate: {} })
      x() {
        return 'x';
      }
    }
    await start([rpm(1)], { controllers: [XController], providers: [{ provide: APP_FILTER, useClass: UpgradeFilter }] });
    await request(app!.getHttpServer()).get('/x').set('x-customer-id', 'acme').expect(200);
    const res = await request(app!.getHttpServer()).get('/x').set('x-customer-id', 'acme').expect(402, { upgrade: 'https://example.com/pricing', used: 1 });
    expect(res.headers['retry-after']).toBeDefined(); // set by the guard before throwing
    expect(seen).toHaveLength(1);
  });

  it('a subclassed guard can override its hooks', async () => {
    @Injectable()
    class ApiKeyGuard extends TollgateGuard {
      protected override async getCustomerId(context: ExecutionContext) {
        const key = context.switchToHttp().getRequest().headers['x-api-key'];
        return key === 'secret-acme' ? 'acme' : undefined;
      }

      protected override async onLimitExceeded(_context: ExecutionContext, decision: Decision): Promise<void> {
        throw new HttpException({ quota: decision.limits[0].limit }, 402);
      }
    }
    @Controller('x')
    @UseGuards(ApiKeyGuard)
    class XController {
      @Get()
      x() {
        return 'x';
      }
    }
    await start([rpm(1)], { controllers: [XController] }, { customerId: undefined });
    await request(app!.getHttpServer()).get('/x').expect(401);
    await request(app!.getHttpServer()).get('/x').set('x-api-key', 'secret-acme').expect(200);
    await waitForEvents(tollgate, 'acme', 1);
    await request(app!.getHttpServer()).get('/x').set('x-api-key', 'secret-acme').expect(402, { quota: 1 });
  });

  it('the Tollgate instance is injectable by class and by token', async () => {
    @Injectable()
    class UsageService {
      constructor(
        readonly byClass: Tollgate,
        @Inject(TOLLGATE) readonly byToken: CoreTollgate,
      ) {}
    }
    @Controller('usage')
    class UsageController {
      constructor(private readonly usageService: UsageService) {}

      @Get()
      async get() {
        const s = this.usageService;
        return { same: s.byClass === s.byToken && s.byClass === tollgate, summary: await s.byClass.events.getSummary({ customerId: 'acme' }) };
      }
    }
    await start([], { controllers: [UsageController], providers: [UsageService] });
    await tollgate.events.record({ customerId: 'acme', eventType: 'x', values: { tokens: 5 } });
    await request(app!.getHttpServer()).get('/usage').expect(200, { same: true, summary: { totalEvents: 1, values: { tokens: 5 } } });
  });

  it("store failure with onStoreError: 'closed' answers 503; 'open' runs unmetered", async () => {
    const flaky = flakyStore();
    @Controller('x')
    class XController {
      @Get()
      @Metered({ estimate: {} })
      x() {
        return 'x';
      }
    }
    tollgate = createTollgate({ meters, limits: [rpm(10)], store: flaky.store });
    app = await boot(platform, { imports: [TollgateModule.forRoot({ tollgate, customerId: customerFromHeader, onStoreError: 'closed' })], controllers: [XController] });
    flaky.fail(true);
    const res = await request(app.getHttpServer()).get('/x').set('x-customer-id', 'acme').expect(503);
    expect(res.body).toEqual({ error: { code: 'store_unavailable', message: expect.any(String) } });
    await app.close();

    const warnings = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    app = await boot(platform, { imports: [TollgateModule.forRoot({ tollgate, customerId: customerFromHeader, onStoreError: 'open' })], controllers: [XController] });
    await request(app.getHttpServer()).get('/x').set('x-customer-id', 'acme').expect(200, 'x');
    await afterResponse();
    warnings.mockRestore();
  });

  describe('streaming (SSE)', () => {
    @Controller('events')
    class EventsController {
      constructor(@Inject('gate') private readonly gate: { promise: Promise<void> }) {}

      @Sse('complete')
      @Metered({ eventType: 'llm.stream', estimate: { tokens: 500 } })
      complete(@Metering() metering: RequestMetering): Observable<MessageEvent> {
        return interval(2).pipe(take(3), map((i) => {
          metering.add({ tokens: 10 });
          return { data: { chunk: i } };
        }));
      }

      @Sse('endless')
      @Metered({ eventType: 'llm.stream', estimate: { tokens: 500, calls: 1 } })
      endless(@Metering() metering: RequestMetering): Observable<MessageEvent> {
        return new Observable<MessageEvent>((subscriber) => {
          metering.add({ tokens: 7 });
          subscriber.next({ data: { chunk: 0 } });
          const timer = setInterval(() => subscriber.next({ data: { tick: true } }), 5);
          return () => clearInterval(timer);
        });
      }
    }

    it('records a completed stream once, with the usage reported along the way', async () => {
      await start([dailyTokens(1000)], { controllers: [EventsController], providers: [{ provide: 'gate', useValue: deferred() }] });
      const res = await request(app!.getHttpServer()).get('/events/complete').set('x-customer-id', 'acme').expect(200);
      expect(res.text.match(/^data: /gm)).toHaveLength(3);
      const [event] = await waitForEvents(tollgate, 'acme', 1);
      expect(event.values).toEqual({ tokens: 30 });
      await afterResponse();
      expect(await recorded(tollgate, 'acme')).toHaveLength(1);
      expect(await usage(tollgate, 'acme')).toEqual({ 'daily-tokens': 30 });
    });

    it('records a stream the client left once, with the usage seen so far and the estimate for the rest', async () => {
      await start([dailyTokens(1000)], { controllers: [EventsController], providers: [{ provide: 'gate', useValue: deferred() }] });
      await new Promise<void>((resolve) => {
        const req = http.get(`${url(app!)}/events/endless`, { headers: { 'x-customer-id': 'acme' } }, (res) => {
          res.once('data', () => req.destroy());
        });
        req.on('close', () => resolve());
        req.on('error', () => resolve());
      });
      const [event] = await waitForEvents(tollgate, 'acme', 1);
      expect(event.values).toEqual({ tokens: 7, calls: 1 });
      await afterResponse();
      expect(await recorded(tollgate, 'acme')).toHaveLength(1);
      expect(await usage(tollgate, 'acme')).toEqual({ 'daily-tokens': 7 });
    });

    /** Opens the route and leaves once the handler has started. */
    async function leave(path: string, started: Promise<void>): Promise<void> {
      await new Promise<void>((resolve) => {
        const req = http.get(`${url(app!)}${path}`, { headers: { 'x-customer-id': 'acme' } });
        void started.then(() => req.destroy());
        req.on('close', () => resolve());
        req.on('error', () => resolve());
      });
    }

    it('records a stream the client leaves before its first value, with the usage added and the estimate (values is not called)', async () => {
      const started = deferred();
      const firstToken = deferred();
      const values = vi.fn((last: MessageEvent) => ({ tokens: (last.data as { tokens: number }).tokens }));
      @Controller('events')
      class SlowStartController {
        @Sse('slow-start')
        @Metered({ eventType: 'llm.stream', estimate: { tokens: 500 }, values })
        slowStart(@Metering() metering: RequestMetering): Observable<MessageEvent> {
          metering.add({ calls: 1 });
          started.resolve();
          return from(firstToken.promise).pipe(map(() => ({ data: { tokens: 10 } })));
        }
      }
      await start([dailyTokens(1000)], { controllers: [SlowStartController] });
      const warnings = vi.spyOn(process, 'emitWarning');
      try {
        await leave('/events/slow-start', started.promise);
        const [event] = await waitForEvents(tollgate, 'acme', 1);
        expect(event.values).toEqual({ tokens: 500, calls: 1 });
        expect(values).not.toHaveBeenCalled();
        expect(warnings).not.toHaveBeenCalled();
        expect(await usage(tollgate, 'acme')).toEqual({ 'daily-tokens': 500 });
      } finally {
        warnings.mockRestore();
        firstToken.resolve();
      }
    });

    it('a values that throws once the client left still records the usage added and the estimate, with a warning', async () => {
      const started = deferred();
      @Controller('events')
      class ThrowingValuesController {
        @Sse('throwing-values')
        @Metered({ eventType: 'llm.stream', estimate: { tokens: 500, calls: 1 }, values: () => { throw new Error('no usage in this chunk'); } })
        stream(@Metering() metering: RequestMetering): Observable<MessageEvent> {
          return new Observable<MessageEvent>((subscriber) => {
            metering.add({ tokens: 7 });
            subscriber.next({ data: { chunk: 0 } });
            started.resolve();
            const timer = setInterval(() => subscriber.next({ data: { tick: true } }), 5);
            return () => clearInterval(timer);
          });
        }
      }
      await start([dailyTokens(1000)], { controllers: [ThrowingValuesController] });
      const warnings = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
      try {
        await leave('/events/throwing-values', started.promise);
        const [event] = await waitForEvents(tollgate, 'acme', 1);
        expect(event.values).toEqual({ tokens: 7, calls: 1 });
        expect(warnings).toHaveBeenCalledWith(expect.stringContaining('no usage in this chunk'), expect.objectContaining({ code: 'TOLLGATE_RECORD_FAILED' }));
      } finally {
        warnings.mockRestore();
      }
    });
  });

  it('a completed handler whose values throws records nothing and releases its hold, with a warning', async () => {
    @Controller('chat')
    class ChatController {
      @Post()
      @Metered({ estimate: { tokens: 800 }, values: (result: ChatResult) => ({ tokens: result.usage.totalTokens }) })
      chat() {
        return { text: 'no usage field' };
      }
    }
    await start([dailyTokens(1000)], { controllers: [ChatController] });
    const warnings = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      await request(app!.getHttpServer()).post('/chat').set('x-customer-id', 'acme').expect(201);
      await vi.waitFor(() => expect(warnings).toHaveBeenCalledWith(expect.stringContaining('not recorded'), expect.objectContaining({ code: 'TOLLGATE_RECORD_FAILED' })));
      await request(app!.getHttpServer()).post('/chat').set('x-customer-id', 'acme').expect(201); // not 429: the first hold is gone
      await afterResponse();
      expect(await recorded(tollgate, 'acme')).toHaveLength(0);
    } finally {
      warnings.mockRestore();
    }
  });

  it('a handler a timeout interceptor gave up on is recorded with the estimate (values is not called)', async () => {
    // The interceptor of Nest's documentation, applied globally, so it runs outside TollgateInterceptor.
    @Injectable()
    class TimeoutInterceptor implements NestInterceptor {
      intercept(_context: ExecutionContext, next: CallHandler) {
        return next.handle().pipe(
          timeout(20),
          catchError((error) => throwError(() => (error instanceof TimeoutError ? new RequestTimeoutException() : error))),
        );
      }
    }
    const modelAnswered = deferred();
    @Controller('chat')
    class ChatController {
      @Post()
      @Metered<ChatResult>({ eventType: 'llm.completion', estimate: { tokens: 800 }, values: (result) => ({ tokens: result.usage.totalTokens }) })
      async chat(): Promise<ChatResult> {
        await modelAnswered.promise;
        return { text: 'late', usage: { totalTokens: 5 } };
      }
    }
    await start([dailyTokens(1000)], { controllers: [ChatController], providers: [{ provide: APP_INTERCEPTOR, useClass: TimeoutInterceptor }] });
    const warnings = vi.spyOn(process, 'emitWarning');
    try {
      await request(app!.getHttpServer()).post('/chat').set('x-customer-id', 'acme').expect(408);
      const [event] = await waitForEvents(tollgate, 'acme', 1);
      expect(event).toMatchObject({ eventType: 'llm.completion', values: { tokens: 800 } });
      expect(warnings).not.toHaveBeenCalled();
    } finally {
      warnings.mockRestore();
      modelAnswered.resolve();
    }
  });

  it('a route streaming through @Res() is recorded when its response ends, with the usage added while writing', async () => {
    @Controller('chat')
    class ChatController {
      @Get('piped')
      @Metered({ eventType: 'llm.stream', estimate: { tokens: 10 } })
      piped(@Res() response: any, @Metering() metering: RequestMetering): void {
        // As pipeTextStreamToResponse does: the handler returns at once and the response goes on.
        if (platform === 'fastify') response.hijack();
        const raw: http.ServerResponse = response.raw ?? response;
        raw.writeHead(200, { 'content-type': 'text/plain' });
        void (async () => {
          for (let i = 0; i < 5; i++) {
            await new Promise((r) => setTimeout(r, 2));
            metering.add({ tokens: 100 });
            raw.write('chunk ');
          }
          raw.end();
        })();
      }
    }
    await start([dailyTokens(1000)], { controllers: [ChatController] });
    const res = await request(app!.getHttpServer()).get('/chat/piped').set('x-customer-id', 'acme').expect(200);
    expect(res.text).toBe('chunk chunk chunk chunk chunk ');
    const [event] = await waitForEvents(tollgate, 'acme', 1);
    expect(event.values).toEqual({ tokens: 500 });
    expect(await usage(tollgate, 'acme')).toEqual({ 'daily-tokens': 500 });
  });

  it('releases the hold of a client that left while the guard was deciding, and never runs the handler', async () => {
    const handler = vi.fn(() => 'ok');
    @Controller('chat')
    class ChatController {
      @Post()
      @Metered({ estimate: { tokens: 800 } })
      chat() {
        return handler();
      }
    }
    // The customer comes from a slow lookup (an auth service): the client leaves meanwhile.
    const asked = deferred();
    const left = deferred();
    const customerId = async () => {
      asked.resolve();
      await left.promise;
      return 'acme';
    };
    await start([dailyTokens(1000)], { controllers: [ChatController] }, { customerId });
    const req = http.request(`${url(app!)}/chat`, { method: 'POST' });
    req.on('error', () => {});
    req.end();
    await asked.promise;
    req.destroy();
    await new Promise((r) => setTimeout(r, 50));
    left.resolve();
    // The reservation is made (it creates the customer), then let go at once, not when it lapses.
    await vi.waitFor(async () => expect(await tollgate.customers.retrieve('acme')).toMatchObject({ id: 'acme' }));
    await afterResponse();
    expect((await tollgate.limits.check({ customerId: 'acme', estimate: { tokens: 800 } })).limits[0].used).toBe(0);
    expect(handler).not.toHaveBeenCalled();
    expect(await recorded(tollgate, 'acme')).toHaveLength(0);
  });

  it('answers 400 invalid_request naming the field when a callback gives a bad customer id or dimension', async () => {
    @Controller('chat')
    class ChatController {
      @Get()
      @Metered({ dimensions: (context) => ({ model: context.switchToHttp().getRequest().query.model }) })
      chat() {
        return 'ok';
      }
    }
    const customerId = (context: ExecutionContext) => {
      const { query } = context.switchToHttp().getRequest();
      return query.account ? Number(query.account) : 'acme';
    };
    await start([rpm(10)], { controllers: [ChatController] }, { customerId: customerId as TollgateModuleOptions['customerId'] });
    const server = app!.getHttpServer();
    const numeric = await request(server).get('/chat?model=small&account=42').expect(400).expect('content-type', /json/);
    expect(numeric.body).toEqual({
      error: { code: 'invalid_request', message: expect.stringContaining('customerId'), issues: [{ path: 'customerId', message: expect.any(String) }] },
    });
    const noModel = await request(server).get('/chat').expect(400);
    expect(noModel.body).toEqual({
      error: { code: 'invalid_request', message: expect.stringContaining('dimensions.model'), issues: [{ path: 'dimensions.model', message: expect.any(String) }] },
    });
    await request(server).get('/chat?model=small').expect(200, 'ok');
    await waitForEvents(tollgate, 'acme', 1);
  });

  describe('a TollgateGuard subclass on a @Metered() route', () => {
    @Injectable()
    class ApiKeyGuard extends TollgateGuard {
      protected override async getCustomerId(context: ExecutionContext) {
        return context.switchToHttp().getRequest().headers['x-api-key'] === 'secret-acme' ? 'acme' : undefined;
      }
    }

    it('decides in place of the guard @Metered() adds, in either order and with @Metered() on the controller', async () => {
      @Controller('a')
      class SubclassAboveController {
        @Get()
        @UseGuards(ApiKeyGuard)
        @Metered({ eventType: 'route.a' })
        a() {
          return 'a';
        }
      }
      @Controller('b')
      class SubclassBelowController {
        @Get()
        @Metered({ eventType: 'route.b' })
        @UseGuards(ApiKeyGuard)
        b() {
          return 'b';
        }
      }
      @Controller('c')
      @Metered({ eventType: 'route.c' })
      class MeteredOnControllerController {
        @Get()
        @UseGuards(ApiKeyGuard)
        c() {
          return 'c';
        }
      }
      await start([rpm(10)], { controllers: [SubclassAboveController, SubclassBelowController, MeteredOnControllerController] }, { customerId: undefined });
      const server = app!.getHttpServer();
      for (const path of ['/a', '/b', '/c']) {
        await request(server).get(path).expect(401);
        await request(server).get(path).set('x-api-key', 'secret-acme').expect(200, path.slice(1));
      }
      const events = await waitForEvents(tollgate, 'acme', 3);
      expect(events.map((e) => e.eventType).sort()).toEqual(['route.a', 'route.b', 'route.c']);
    });

    it('decides in place of a global TollgateGuard', async () => {
      @Controller('a')
      class KeyedController {
        @Get()
        @UseGuards(ApiKeyGuard)
        a() {
          return 'a';
        }
      }
      await start([rpm(10)], {
        controllers: [KeyedController],
        providers: [{ provide: APP_GUARD, useClass: TollgateGuard }, { provide: APP_INTERCEPTOR, useClass: TollgateInterceptor }],
      }, { customerId: () => 'from-module' });
      await request(app!.getHttpServer()).get('/a').set('x-api-key', 'secret-acme').expect(200, 'a');
      await waitForEvents(tollgate, 'acme', 1);
      await afterResponse();
      expect(await recorded(tollgate, 'from-module')).toHaveLength(0);
    });
  });
});

describe('TollgateModule.forRootAsync', () => {
  it.each(platforms)('builds its options from ConfigService (%s)', async (platform) => {
    @Controller('x')
    class XController {
      constructor(readonly tollgate: Tollgate) {}

      @Get()
      @Metered()
      x() {
        return 'x';
      }
    }
    const app = await boot(platform, {
      imports: [
        ConfigModule.forRoot({ ignoreEnvFile: true, load: [() => ({ REQUESTS_PER_MINUTE: 1, CUSTOMER_HEADER: 'x-tenant' })] }),
        TollgateModule.forRootAsync({
          imports: [ConfigModule],
          inject: [ConfigService],
          useFactory: (config: ConfigService) => ({
            tollgate: { meters, limits: [rpm(config.getOrThrow<number>('REQUESTS_PER_MINUTE'))] },
            customerId: (context) => context.switchToHttp().getRequest().headers[config.getOrThrow<string>('CUSTOMER_HEADER')],
          }),
        }),
      ],
      controllers: [XController],
    });
    try {
      await request(app.getHttpServer()).get('/x').set('x-tenant', 'acme').expect(200);
      const tollgate = app.get(Tollgate);
      await waitForEvents(tollgate, 'acme', 1);
      await request(app.getHttpServer()).get('/x').set('x-tenant', 'acme').expect(429);
    } finally {
      await app.close();
    }
  });

  it('rejects invalid options from the factory at start-up', async () => {
    await expect(boot('express', {
      imports: [TollgateModule.forRootAsync({ useFactory: () => ({ customerId: 'acme', standardHeaders: 'draft-9' }) as unknown as TollgateModuleOptions })],
    })).rejects.toMatchObject({ code: 'invalid_request', issues: [{ path: 'customerId' }, { path: 'standardHeaders' }] });
  });
});

describe('options validation', () => {
  it('forRoot rejects bad options with invalid_request naming each field', () => {
    try {
      TollgateModule.forRoot({ customerId: 'acme', eventType: 'bad type', legacyHeaders: 1, onStoreError: 'sometimes', tollgat: {} } as unknown as TollgateModuleOptions);
      expect.unreachable();
    } catch (error) {
      expect(TollgateError.isInstance(error)).toBe(true);
      expect((error as TollgateError).issues!.map((i) => i.path).sort()).toEqual(['customerId', 'eventType', 'legacyHeaders', 'onStoreError', 'tollgat']);
    }
  });

  it('@Metered rejects bad options when the class is declared', () => {
    expect(() => Metered({ eventType: 'has spaces', estimate: { tokens: Number.POSITIVE_INFINITY }, values: 3 } as never)).toThrow(/Invalid @Metered\(\) options: eventType.*estimate.*values/);
  });
});
