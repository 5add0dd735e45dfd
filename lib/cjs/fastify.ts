// The CommonJS face of `tiered-session/fastify`: `require()` returns the plugin itself, so
// `app.register(require('tiered-session/fastify'))` and TypeScript's
// `import plugin = require('tiered-session/fastify')` work, and the named exports ride along as
// properties (`.default`, `.tieredSession`, `.errors`, …). Built only into dist/cjs.
import impl = require('../fastify/index.js');

const plugin = Object.assign(impl.default, impl);
export = plugin;
