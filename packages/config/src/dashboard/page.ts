/**
 * The web dashboard served at `GET /` by `reborn-config dashboard`: one static HTML string
 * (inline CSS + vanilla JS, no build step, no external URL). The page holds no data; it polls
 * the REST API of api.ts every 2 s and calls it for every action.
 *
 * What it shows: KPIs (total QPS with a live chart of the last 2 minutes, keys, memory,
 * proxies, groups, slot states), the slot map coloured by owner or, toggled, as a heat map of
 * per-slot QPS; groups and servers with each server's role as it reports it, replication lag,
 * memory and keys (INFO, /api/servers), each group's in-sync set, minInSync and wantReplicas
 * (with a DEGRADED / REFUSING marker) and a form that sets them; proxies with QPS and sessions (/api/stats); migrations;
 * rebalance; the HA agents' failover events (/api/events, the newest 50). The QPS history lives
 * in the page only (each refresh adds a point, stamped with the sample's `at`; points older
 * than 2 minutes are dropped, however often refresh runs).
 *
 * Each section is rendered from its own response: a slow or failing call leaves the others
 * rendered (and its error is shown in the error area).
 *
 * Every API call of the page goes through `api(METHOD, '/api/route/:pattern', params, body)`
 * with the route pattern exactly as the API's route table (api/routes.ts) declares it, so
 * test/dashboard.test.ts can extract them from the served HTML and check each one exists.
 *
 * Token: when the API answers 401 the page shows a token input; the token is kept in
 * sessionStorage and sent as `Authorization: Bearer <token>` only (never in a URL).
 * Errors (`{error, code}` bodies, network failures) are shown in the error area at the top.
 *
 * Every call but GET carries `Content-Type: application/json` (a body or not): the API refuses
 * state-changing requests without it, which is what keeps other web pages from sending them.
 *
 * Served with DASHBOARD_PAGE_HEADERS: a Content-Security-Policy that lets only this page's own
 * inline script run (by its SHA-256 hash, computed below from the exact text served), talk only
 * to its own origin, load nothing, and never be framed. Inline event-handler attributes
 * (onclick=…) would be blocked: wire events with addEventListener.
 *
 * The page is joined here from three parts, each a template literal in its own module:
 * styles.ts (the CSS), markup.ts (the body) and script.ts (the JS). Note for editors: the text
 * inside them must not use backticks, `${` or backslashes.
 */
import { createHash } from 'node:crypto';
import { DASHBOARD_MARKUP } from './markup.js';
import { DASHBOARD_SCRIPT } from './script.js';
import { DASHBOARD_STYLES } from './styles.js';

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reborn dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
${DASHBOARD_STYLES}</style></head><body>
${DASHBOARD_MARKUP}<script>
${DASHBOARD_SCRIPT}</script></body></html>
`;

/** The text of the page's one inline script, exactly as served (what the CSP hash covers). */
function inlineScript(html: string): string {
  const open = html.indexOf('<script>');
  const close = html.indexOf('</script>');
  if (open < 0 || close < open || html.indexOf('<script', open + 1) >= 0) throw new Error('dashboard page: want exactly one inline <script>');
  return html.slice(open + '<script>'.length, close);
}

/**
 * Headers of the page. style-src allows inline styles: the slot map and the legend colour each
 * element with a computed `style` attribute; with no style or font host allowed and img-src
 * limited to this origin, injected CSS could not send anything anywhere.
 */
export const DASHBOARD_PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': [
    "default-src 'none'",
    `script-src 'sha256-${createHash('sha256').update(inlineScript(DASHBOARD_HTML)).digest('base64')}'`,
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};
