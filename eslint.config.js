// Lint: typescript-eslint's recommended rules, Vue's essential rules for the renderer's single-file
// components, and the import boundaries described in docs/architecture.md.
import pluginVue from 'eslint-plugin-vue';
import tseslint from 'typescript-eslint';

const noImport = (...groups) => ({
  'no-restricted-imports': ['error', { patterns: groups.map((g) => ({ group: [g], message: 'crosses a runtime boundary (see docs/architecture.md)' })) }],
});
// The compute side of the worker: the main process may read catalogs and checkpoints, never compute.
const compute = ['engine', 'nn', 'optim', 'jobs', 'analysis', 'torch'].map((d) => `**/native-worker/${d}/**`);
// The renderer runs in a browser sandbox: common/ and its own files only, never Node or Electron.
const nodeBuiltins = ['node:*', 'fs', 'fs/*', 'path', 'os', 'child_process', 'worker_threads', 'electron', 'electron/*'];

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.device/', 'test-results/', '.cache/'] },
  ...tseslint.configs.recommended,
  ...pluginVue.configs['flat/essential'],
  {
    files: ['**/*.vue'],
    languageOptions: { parserOptions: { parser: tseslint.parser, extraFileExtensions: ['.vue'], sourceType: 'module' } },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  { files: ['common/**'], rules: noImport('**/main/**', '**/renderer/**', '**/native-worker/**', 'electron', 'node:*') },
  { files: ['renderer/**'], rules: noImport('**/main/**', '**/native-worker/**', ...nodeBuiltins) },
  { files: ['native-worker/**'], rules: noImport('**/main/**', '**/renderer/**', 'electron') },
  { files: ['main/**'], rules: noImport('**/renderer/**', ...compute) },
);
