import { Inject, Injectable, Module, type DynamicModule, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import { createTollgate, type Tollgate as CoreTollgate } from '@tollgate/core';
import { isTollgateInstance, validateModuleOptions, type TollgateModuleAsyncOptions, type TollgateModuleOptions } from './options.js';
import { TOLLGATE, TOLLGATE_MODULE_OPTIONS, Tollgate } from './tokens.js';

/** Closes the engine on shutdown when the module created it; an instance you passed in is yours to close. */
@Injectable()
class TollgateLifecycle implements OnApplicationShutdown {
  constructor(
    @Inject(TOLLGATE) private readonly tollgate: CoreTollgate,
    @Inject(TOLLGATE_MODULE_OPTIONS) private readonly options: TollgateModuleOptions,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    if (!isTollgateInstance(this.options.tollgate)) await this.tollgate.close();
  }
}

const shared: Provider[] = [
  {
    provide: TOLLGATE,
    // Waiting for ready() makes a store that cannot start fail the app's start-up, instead of
    // the app serving requests while every decision falls back to onStoreError.
    useFactory: async (options: TollgateModuleOptions) => {
      const tollgate = isTollgateInstance(options.tollgate) ? options.tollgate : createTollgate(options.tollgate);
      await tollgate.ready();
      return tollgate;
    },
    inject: [TOLLGATE_MODULE_OPTIONS],
  },
  { provide: Tollgate, useExisting: TOLLGATE },
  TollgateLifecycle,
];
const exported = [TOLLGATE, Tollgate, TOLLGATE_MODULE_OPTIONS];

/**
 * Provides the `Tollgate` engine to the whole application (a global module), injectable as the
 * `Tollgate` class or the `TOLLGATE` token, for the guard and interceptor `@Metered()` applies
 * and for your own services. Import it once, in the root module.
 *
 * @example
 * @Module({
 *   imports: [TollgateModule.forRoot({
 *     tollgate: { meters: [...], limits: [...] },
 *     customerId: (context) => context.switchToHttp().getRequest().headers['x-customer-id'],
 *   })],
 * })
 * export class AppModule {}
 */
@Module({})
export class TollgateModule {
  static forRoot(options: TollgateModuleOptions): DynamicModule {
    return {
      module: TollgateModule,
      global: true,
      providers: [{ provide: TOLLGATE_MODULE_OPTIONS, useValue: validateModuleOptions(options) }, ...shared],
      exports: exported,
    };
  }

  /**
   * Like `forRoot`, with options built from injected providers.
   * @example
   * TollgateModule.forRootAsync({
   *   imports: [ConfigModule],
   *   inject: [ConfigService],
   *   useFactory: (config: ConfigService) => ({ tollgate: { limits: [{ ..., limitValue: config.get('DAILY_TOKENS') }] }, customerId }),
   * })
   */
  static forRootAsync(options: TollgateModuleAsyncOptions): DynamicModule {
    return {
      module: TollgateModule,
      global: true,
      imports: options.imports ?? [],
      providers: [
        {
          provide: TOLLGATE_MODULE_OPTIONS,
          useFactory: async (...args: unknown[]) => validateModuleOptions(await options.useFactory(...args)),
          inject: options.inject ?? [],
        },
        ...shared,
      ],
      exports: exported,
    };
  }
}
