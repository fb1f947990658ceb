// Lint: typescript-eslint's recommended rules plus the import boundaries of ARCHITECTURE.md.
import tseslint from 'typescript-eslint';

const noImport = (...groups) => ({
  'no-restricted-imports': ['error', { patterns: groups.map((g) => ({ group: [g], message: 'crosses a runtime boundary (see ARCHITECTURE.md)' })) }],
});
// The compute side of the worker: the main process may read catalogs and checkpoints, never compute.
const compute = ['engine', 'nn', 'optim', 'jobs', 'analysis', 'torch'].map((d) => `**/native-worker/${d}/**`);

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.device/', 'test-results/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  { files: ['common/**'], rules: noImport('**/main/**', '**/renderer/**', '**/native-worker/**', 'electron', 'node:*') },
  { files: ['renderer/**'], rules: noImport('**/main/**', '**/native-worker/**', 'electron', 'node:*') },
  { files: ['native-worker/**'], rules: noImport('**/main/**', '**/renderer/**', 'electron') },
  { files: ['main/**'], rules: noImport('**/renderer/**', ...compute) },
);
