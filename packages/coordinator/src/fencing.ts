/**
 * Fencing at the backends (docs/architecture.md, proxies that do not ack). Every proxy talks to redis
 * as its own ACL user; disabling that user and killing its connections on a server makes the
 * server refuse the proxy whatever the proxy believes. The name is derived here so that the
 * proxy (which authenticates as it) and reborn-config (which fences it) agree.
 */
export function proxyAclUser(product: string, proxyId: string): string {
  // ACL user names may not contain spaces; product and proxy ids are [A-Za-z0-9_.:-] already.
  return `reborn:${product}:${proxyId}`;
}

/** ACL rules giving a proxy user everything a client may ask for through the proxy. */
export function proxyAclRules(password: string): string[] {
  return ['on', 'resetpass', `>${password}`, '~*', '&*', '+@all'];
}
