// The CommonJS face of `tiered-session/express`: `require()` returns the middleware factory
// itself (`require('tiered-session/express')({ client, secret })`), with the named exports as
// properties (`.default`, `.tieredSession`, `.errors`, …). Built only into dist/cjs.
import impl = require('../express/index.js');

const factory = Object.assign(impl.default, impl);
export = factory;
