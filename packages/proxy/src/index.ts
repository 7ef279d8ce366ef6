export { Proxy } from './proxy.js';
export { parseProxyOptions, OptionsError, type ProxyOptions } from './options.js';
