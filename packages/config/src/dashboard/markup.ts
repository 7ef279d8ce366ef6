/**
 * The dashboard page's markup: the <body> content before the script (header, error and token
 * areas, the sections the script fills in), joined into the page by page.ts. Invariant: no
 * inline event-handler attribute (onclick=…) and no <script>: the CSP lets only the page's one
 * inline script run, and the script wires every event with addEventListener.
 *
 * A template literal: the text inside must not use backticks, `${` or backslashes.
 */
export const DASHBOARD_MARKUP = `<header><h1>reborn</h1><span>product <b id="product">?</b></span><span class="mute" id="updated">loading…</span></header>
<main>
<div id="errors" role="alert"></div>
<div id="topologyAlarm" role="alert"></div>
<section id="auth"><h2>API token required</h2>
<form id="authForm"><input id="token" type="password" class="wide" placeholder="bearer token" autocomplete="off"><button type="submit">use token</button>
<span class="mute">kept in this tab's sessionStorage, sent as Authorization: Bearer</span></form></section>

<section><h2>Overview</h2><div class="overview"><div class="kpis" id="kpis"></div>
<div id="qpsChart" aria-label="total QPS chart"></div></div><div id="notes" class="warn"></div></section>

<section><h2>Slot map</h2>
<div class="maphead"><label><input type="checkbox" id="heatToggle"> heat map (QPS per slot through the proxies)</label></div>
<div class="legend" id="legend"></div>
<div id="slotmap" aria-label="slot map"></div>
<div id="tip"></div>
</section>

<section><h2>Groups and servers</h2>
<table id="groups"></table>
<form id="addServerForm"><b>add server</b> group <input name="gid" type="number" min="1" max="9999" required>
host:port <input name="addr" class="wide" placeholder="127.0.0.1:6379" required><button type="submit">add server</button></form>
<form id="groupSettingsForm"><b>group settings</b> group <input name="gid" type="number" min="1" max="9999" required>
min-in-sync <input name="minInSync" placeholder="n or none" autocomplete="off"> want-replicas <input name="wantReplicas" placeholder="n or none" autocomplete="off">
<label><input name="force" type="checkbox"> force</label><button type="submit">set</button>
<span class="mute">empty: unchanged, none: clear; force: a min-in-sync above the group's replicas</span></form>
<form id="addGroupForm"><b>add group</b> id <input name="id" type="number" min="1" max="9999" required><button type="submit">add group</button></form>
</section>

<section><h2>Proxies</h2><table id="proxies"></table><div id="barriers" class="warn"></div></section>

<section><h2>Migrations</h2>
<form id="migrateForm"><b>start</b> slots <input name="from" type="number" min="0" max="1023" required> to
<input name="to" type="number" min="0" max="1023" required> → group <input name="group" type="number" min="1" max="9999" required>
throttle <input name="throttle" type="number" min="0" placeholder="keys/s"><button type="submit">start migration</button></form>
<table id="migrations"></table>
</section>

<section><h2>Failover events</h2><p class="mute" id="eventsNote">events of the HA agents (reborn-agent --ha), newest first</p>
<table id="events"></table></section>

<section><h2>Rebalance</h2>
<button id="planBtn">preview plan</button> <button id="runBtn" class="danger">run rebalance</button>
<div id="plan"></div>
</section>
</main>
`;
