import { defineConfig } from 'vitest/config';

// Unit tests sit beside the code (packages/*/src/**/*.test.ts); end-to-end tests that start
// real redis-server and etcd processes live in test/. Every test picks free ports, so files
// run in parallel; the machine has two cores, so keep the worker count modest.
export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
