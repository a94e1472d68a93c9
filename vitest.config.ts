import { fileURLToPath } from 'node:url';
import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// Tests run against the TypeScript sources; consumer tests exercise the built packages.
const alias = [
  { find: /^@tollgate\/core$/, replacement: here('./packages/core/src/index.ts') },
  { find: /^@tollgate\/core\/(sqlite|postgres|redis|testing)$/, replacement: here('./packages/core/src/$1/index.ts') },
  { find: /^@tollgate\/(express|nestjs|ai)$/, replacement: here('./packages/$1/src/index.ts') },
];

export default defineConfig({
  test: {
    projects: [
      { resolve: { alias }, test: { name: 'core', include: ['packages/core/test/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 } },
      { resolve: { alias }, test: { name: 'express', include: ['packages/express/test/**/*.test.ts'], testTimeout: 30_000 } },
      {
        // Nest's decorators need emitted metadata, which esbuild does not produce.
        plugins: [swc.vite({ jsc: { parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true }, target: 'es2022' } })],
        resolve: { alias },
        test: { name: 'nestjs', include: ['packages/nestjs/test/**/*.test.ts'], testTimeout: 30_000 },
      },
      { resolve: { alias }, test: { name: 'ai', include: ['packages/ai/test/**/*.test.ts'], testTimeout: 30_000 } },
      { resolve: { alias }, test: { name: 'examples', include: ['examples/*/test/**/*.test.ts', 'test/**/*.test.ts'], testTimeout: 180_000, hookTimeout: 180_000 } },
    ],
  },
});
