// ESLint (flat config): the recommended rules of ESLint and typescript-eslint over the sources,
// the tests, the examples, the benchmarks and the scripts, and lines of at most 140 characters.
import js from '@eslint/js';
import stylistic from '@stylistic/eslint-plugin';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'docs/api/', '.tap/', 'coverage/', 'node_modules/', '**/node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.{ts,mts,js,mjs,cjs}'],
    languageOptions: { globals: { ...globals.node } },
    plugins: { '@stylistic': stylistic },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@stylistic/max-len': ['error', { code: 140, ignoreUrls: true, ignoreRegExpLiterals: true }],
      // A leading underscore marks a parameter a signature needs but the body does not read
      // (Express tells an error handler by its four parameters).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
      // `import x = require()` is how a CommonJS entry point imports in TypeScript.
      '@typescript-eslint/no-require-imports': ['error', { allowAsImport: true }],
      // Augmenting a framework's global types (Express.Request) takes a declared namespace.
      '@typescript-eslint/no-namespace': ['error', { allowDeclarations: true }],
      // An interface the app augments (SessionData) starts empty.
      '@typescript-eslint/no-empty-object-type': ['error', { allowInterfaces: 'always' }],
    },
  },
  {
    // CommonJS files: require() is their import.
    files: ['**/*.cjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['examples/demo/public/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
);
