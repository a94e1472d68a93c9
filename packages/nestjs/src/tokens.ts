import { Inject } from '@nestjs/common';
import type { Tollgate as CoreTollgate } from '@tollgate/core';

/** Injection token of the `Tollgate` instance. Same instance as the {@link Tollgate} class token. */
export const TOLLGATE = 'TOLLGATE_INSTANCE';

/** Metadata key of `@Metered()` options. */
export const METERED_METADATA = 'tollgate:metered';

/** Metadata key of `@SkipMetering()`. */
export const SKIP_METERING_METADATA = 'tollgate:skip-metering';

/** Injection token of the options given to `TollgateModule.forRoot` / `forRootAsync`. */
export const TOLLGATE_MODULE_OPTIONS = 'TOLLGATE_MODULE_OPTIONS';

/**
 * The `Tollgate` engine as an injectable class token, so constructors need no `@Inject`:
 * `constructor(private readonly tollgate: Tollgate) {}`. It is an abstract class with the
 * engine's full type; Nest resolves it to the instance the module provides.
 */
export abstract class Tollgate {}
// Declaration merging gives the token the engine's API.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface Tollgate extends CoreTollgate {}

/**
 * Injects the `Tollgate` instance by its token.
 * @example constructor(@InjectTollgate() private readonly tollgate: Tollgate) {}
 */
export const InjectTollgate = (): ParameterDecorator & PropertyDecorator => Inject(TOLLGATE);
