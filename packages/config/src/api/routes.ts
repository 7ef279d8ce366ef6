/**
 * The REST API's route table: every `/api/…` route as data (method, path pattern, path
 * parameter parsers, body schema, handler), from the handler modules by noun. Invariant: the
 * order is the order of matching, and within a path shape it decides which route answers
 * (`GET /api/slots/:id` before `POST /api/slots/init`: `GET /api/slots/init` is a bad slot id,
 * `POST /api/slots/5` is 405). The dashboard's script calls these patterns literally.
 */
import { checkRoutes } from './check.js';
import { groupRoutes } from './groups.js';
import { migrationRoutes } from './migrations.js';
import { redisConfigRoutes } from './redis-config.js';
import type { ApiDeps, Route } from './routing.js';
import { slotRoutes } from './slots.js';
import { liveRoutes, overviewRoutes, proxyRoutes } from './views.js';

export function apiRoutes(deps: ApiDeps): Route[] {
  return [
    ...overviewRoutes(deps),
    ...groupRoutes(deps),
    ...slotRoutes(deps),
    ...migrationRoutes(deps),
    ...proxyRoutes(deps),
    ...liveRoutes(deps),
    ...checkRoutes(deps),
    ...redisConfigRoutes(deps),
  ];
}
