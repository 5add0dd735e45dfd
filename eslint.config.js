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
    },
  },
  {
    files: ['examples/demo/public/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
);
