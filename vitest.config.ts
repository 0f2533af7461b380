import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Node loads graphql's CommonJS build for everyone; Vite would pick its .mjs
    // for our files only, and graphql refuses types from "another realm".
    alias: { graphql: 'graphql/index.js' },
  },
  test: {
    include: ['test/**/*.test.ts'],
    // the default report for people, and a JSON one that .ci/run sums up in one line
    reporters: ['default', ['json', { outputFile: 'test-results.json' }]],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // each test file starts its own nats-server; two cores run two files at once, except in CI
    // (CI=true), where one file at a time keeps the timing-sensitive tests off each other's cores
    fileParallelism: true,
    maxWorkers: process.env.CI ? 1 : 2,
  },
});
