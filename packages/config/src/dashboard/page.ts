/**
 * The web dashboard served at `GET /` by `reborn-config dashboard`: one static HTML string
 * (inline CSS + vanilla JS, no build step, no external URL). The page holds no data; it polls
 * the REST API of api.ts every 2 s and calls it for every action.
 *
 * Every API call of the page goes through `api(METHOD, '/api/route/:pattern', params, body)`
 * with the route pattern exactly as api.ts declares it, so test/dashboard.test.ts can extract
 * them from the served HTML and check each one exists.
 *
 * Token: when the API answers 401 the page shows a token input; the token is kept in
 * sessionStorage and sent as `Authorization: Bearer <token>` only (never in a URL).
 * Errors (`{error, code}` bodies, network failures) are shown in the error area at the top.
 *
 * Note for editors: this is a template literal; the JS inside must not use backticks, `${`
 * or backslashes.
 */

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reborn dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
:root{--bg:#f6f7f9;--card:#fff;--line:#dde1e6;--ink:#1d232b;--mute:#6b7480;--err:#b3261e}
*{box-sizing:border-box}
body{font:13px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:var(--bg);color:var(--ink)}
header{display:flex;align-items:center;gap:16px;padding:10px 20px;background:#1d232b;color:#fff}
header h1{font-size:17px;margin:0}header .mute{color:#aab3bd}
main{padding:12px 20px;display:grid;gap:14px}
section{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:12px 14px}
h2{font-size:14px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{font-weight:600;color:var(--mute)}
button{font:inherit;padding:2px 9px;border:1px solid #9aa4ae;border-radius:4px;background:#fff;cursor:pointer}
button:hover{background:#eef1f4}button.danger{border-color:#d9a0a0;color:var(--err)}
input{font:inherit;padding:2px 6px;border:1px solid #9aa4ae;border-radius:4px;width:90px}input.wide{width:180px}
form{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:8px 0}
.mute{color:var(--mute)}.warn{color:#a35200}
#errors{display:none;border:1px solid var(--err);background:#fdecea;color:var(--err);border-radius:6px;padding:8px 12px}
#errors.show{display:block}#errors div{margin:2px 0}#errors code{font-weight:600}
#auth{display:none}#auth.show{display:block}
.kpis{display:flex;flex-wrap:wrap;gap:10px}.kpi{border:1px solid var(--line);border-radius:6px;padding:6px 12px;min-width:110px}
.kpi b{display:block;font-size:18px}
#slotmap{display:grid;grid-template-columns:repeat(64,13px);grid-auto-rows:13px;gap:1px;margin:6px 0}
#slotmap .s{width:13px;height:13px;border-radius:2px;background:#ccc}
#slotmap .s.offline{background:#c9ccd1 !important;opacity:.55}
#slotmap .s.pre_migrate{outline:2px dashed #111;outline-offset:-2px}
#slotmap .s.migrating{outline:2px solid #111;outline-offset:-2px}
#slotmap .s:hover{transform:scale(1.5);position:relative;z-index:2}
.legend{display:flex;flex-wrap:wrap;gap:12px;align-items:center}.legend span{display:inline-flex;align-items:center;gap:4px}
.sw{display:inline-block;width:13px;height:13px;border-radius:2px}
#tip{position:fixed;pointer-events:none;background:#1d232b;color:#fff;padding:3px 7px;border-radius:4px;display:none;z-index:10}
.bar{background:#e6e9ed;width:140px;height:9px;display:inline-block;border-radius:4px;overflow:hidden;vertical-align:middle}
.bar i{background:#2e9b62;height:9px;display:block}
pre{background:#f1f3f5;padding:8px;border-radius:4px;white-space:pre-wrap;margin:6px 0}
</style></head><body>
<header><h1>reborn</h1><span>product <b id="product">?</b></span><span class="mute" id="updated">loading…</span></header>
<main>
<div id="errors" role="alert"></div>
<section id="auth"><h2>API token required</h2>
<form id="authForm"><input id="token" type="password" class="wide" placeholder="bearer token" autocomplete="off"><button type="submit">use token</button>
<span class="mute">kept in this tab's sessionStorage, sent as Authorization: Bearer</span></form></section>

<section><h2>Overview</h2><div class="kpis" id="kpis"></div><div id="notes" class="warn"></div></section>

<section><h2>Slot map</h2>
<div class="legend" id="legend"></div>
<div id="slotmap" aria-label="slot map"></div>
<div id="tip"></div>
</section>

<section><h2>Groups and servers</h2>
<table id="groups"></table>
<form id="addServerForm"><b>add server</b> group <input name="gid" type="number" min="1" max="9999" required>
host:port <input name="addr" class="wide" placeholder="127.0.0.1:6379" required><button type="submit">add server</button></form>
<form id="addGroupForm"><b>add group</b> id <input name="id" type="number" min="1" max="9999" required><button type="submit">add group</button></form>
</section>

<section><h2>Proxies</h2><table id="proxies"></table><div id="barriers" class="warn"></div></section>

<section><h2>Migrations</h2>
<form id="migrateForm"><b>start</b> slots <input name="from" type="number" min="0" max="1023" required> to
<input name="to" type="number" min="0" max="1023" required> → group <input name="group" type="number" min="1" max="9999" required>
throttle <input name="throttle" type="number" min="0" placeholder="keys/s"><button type="submit">start migration</button></form>
<table id="migrations"></table>
</section>

<section><h2>Rebalance</h2>
<button id="planBtn">preview plan</button> <button id="runBtn" class="danger">run rebalance</button>
<div id="plan"></div>
</section>
</main>
<script>
'use strict';
var SLOTS = 1024;
var TOKEN_KEY = 'reborn-token';
var $ = function (id) { return document.getElementById(id); };
var esc = function (s) {
  return String(s).replace(/[&<>"']/g, function (c) { return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]; });
};
var row = function (cells, th) {
  return '<tr>' + cells.map(function (c) { return (th ? '<th>' : '<td>') + c + (th ? '</th>' : '</td>'); }).join('') + '</tr>';
};
function color(gid) {
  if (!gid) return '#c9ccd1';
  return 'hsl(' + Math.round((gid * 137.508) % 360) + ',62%,' + (gid % 2 ? 48 : 60) + '%)';
}
function fmtSecs(s) {
  if (s === null || s === undefined || !isFinite(s)) return '-';
  s = Math.round(s);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

// ------------------------------------------------------------------ API access and errors
var pollError = null;
var actionErrors = [];
function renderErrors() {
  var items = [];
  if (pollError) items.push('<div>refresh failed: ' + pollError + '</div>');
  actionErrors.forEach(function (e, i) {
    items.push('<div>' + e + ' <button data-dismiss="' + i + '">dismiss</button></div>');
  });
  $('errors').innerHTML = items.join('');
  $('errors').className = items.length ? 'show' : '';
}
function describe(err) {
  if (err && err.body && typeof err.body === 'object' && err.body.error !== undefined) {
    return esc(err.method + ' ' + err.path + ' → ' + err.status + ' ') + '<code>' + esc(err.body.code || '') + '</code> ' + esc(err.body.error);
  }
  if (err && err.status) return esc(err.method + ' ' + err.path + ' → HTTP ' + err.status + ' ' + (err.text || ''));
  return esc((err && err.message) || String(err));
}
function actionFailed(err) {
  actionErrors.push(new Date().toLocaleTimeString() + ' ' + describe(err));
  if (actionErrors.length > 8) actionErrors.shift();
  renderErrors();
}
function showAuth(show) { $('auth').className = show ? 'show' : ''; }

// api(method, routePattern, params, body): the pattern is the route of api.ts, :names filled from params.
function api(method, pattern, params, body) {
  var path = pattern.replace(/:([a-z]+)/g, function (_, k) { return encodeURIComponent(String(params[k])); });
  var headers = {};
  var token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers['authorization'] = 'Bearer ' + token;
  var init = { method: method, headers: headers, cache: 'no-store' };
  if (body !== undefined) { headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
  return fetch(path, init).then(function (res) {
    return res.text().then(function (text) {
      var data = null;
      try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
      if (res.status === 401) showAuth(true);
      if (!res.ok) {
        var err = new Error((data && data.error) || ('HTTP ' + res.status));
        err.status = res.status; err.body = data; err.text = data ? '' : text.slice(0, 200); err.method = method; err.path = path;
        throw err;
      }
      return data;
    });
  });
}
// Runs an action, shows its error, refreshes after it.
function act(promise, done) {
  return promise.then(function (r) { if (done) done(r); return refresh(); }).catch(actionFailed);
}

// ------------------------------------------------------------------ slot map
var cells = [];
(function buildMap() {
  var map = $('slotmap');
  var frag = document.createDocumentFragment();
  for (var i = 0; i < SLOTS; i++) {
    var d = document.createElement('div');
    d.className = 's offline';
    d.dataset.slot = String(i);
    d.title = 'slot ' + i + ': offline';
    frag.appendChild(d);
    cells.push(d);
  }
  map.appendChild(frag);
  var tip = $('tip');
  map.addEventListener('mousemove', function (ev) {
    var t = ev.target;
    if (!t.dataset || t.dataset.slot === undefined) { tip.style.display = 'none'; return; }
    tip.textContent = t.dataset.tip || t.title;
    tip.style.display = 'block';
    tip.style.left = (ev.clientX + 12) + 'px';
    tip.style.top = (ev.clientY + 12) + 'px';
  });
  map.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
})();

function renderSlots(ranges, groups) {
  ranges.forEach(function (r) {
    for (var id = r.first; id <= r.last; id++) {
      var c = cells[id];
      if (!c) continue;
      var text = 'slot ' + id + ': ' + r.state + ', group ' + (r.group || '-') +
        (r.from !== undefined ? ', ' + r.from + '→' + r.to : '');
      c.className = 's ' + r.state;
      c.dataset.state = r.state;
      c.dataset.group = String(r.group);
      if (r.state === 'pre_migrate' || r.state === 'migrating') {
        c.style.background = 'repeating-linear-gradient(45deg,' + color(r.from) + ' 0 3px,' + color(r.to) + ' 3px 6px)';
      } else {
        c.style.background = color(r.group);
      }
      c.title = text;
      c.dataset.tip = text;
    }
  });
  var items = groups.map(function (g) {
    return '<span><i class="sw" style="background:' + color(g.id) + '"></i>group ' + g.id + ' (' + g.slots + ')</span>';
  });
  items.push('<span><i class="sw" style="background:#c9ccd1;opacity:.55"></i>offline</span>');
  items.push('<span><i class="sw" style="background:repeating-linear-gradient(45deg,#888 0 3px,#ddd 3px 6px);outline:2px dashed #111;outline-offset:-2px"></i>pre_migrate (from/to stripes)</span>');
  items.push('<span><i class="sw" style="background:repeating-linear-gradient(45deg,#888 0 3px,#ddd 3px 6px);outline:2px solid #111;outline-offset:-2px"></i>migrating</span>');
  $('legend').innerHTML = items.join('');
}

// ------------------------------------------------------------------ tables
function renderOverview(o) {
  $('product').textContent = o.product;
  var by = o.slots.byState || {};
  var kpi = function (label, value) { return '<div class="kpi"><span class="mute">' + esc(label) + '</span><b>' + esc(value) + '</b></div>'; };
  $('kpis').innerHTML = [
    kpi('groups', o.groups.length),
    kpi('proxies', o.proxies.length),
    kpi('online slots', by.online || 0),
    kpi('pre_migrate', by.pre_migrate || 0),
    kpi('migrating', by.migrating || 0),
    kpi('offline slots', by.offline || 0),
    kpi('fences', o.fences.length),
    kpi('active migrations', o.migrations.length),
  ].join('');
  var notes = [];
  if (!o.runnerAlive) notes.push('no migration runner is alive for this product');
  o.fences.forEach(function (f) { notes.push('proxy ' + esc(f.proxyId) + ' fenced at ' + esc(f.at) + ': ' + esc(f.reason)); });
  $('notes').innerHTML = notes.join('<br>');

  var g = [row(['group', 'slots', 'server', 'role', ''], true)];
  o.groups.forEach(function (grp) {
    var servers = grp.servers.length ? grp.servers : [null];
    servers.forEach(function (s, i) {
      var btns = '';
      if (s) {
        if (s.role !== 'master') btns += '<button data-promote="' + esc(s.addr) + '" data-gid="' + grp.id + '">promote</button> ';
        btns += '<button class="danger" data-remove-server="' + esc(s.addr) + '" data-gid="' + grp.id + '">remove</button>';
      } else {
        btns = '<button class="danger" data-remove-group="' + grp.id + '">remove group</button>';
      }
      g.push(row([
        i === 0 ? '<i class="sw" style="background:' + color(grp.id) + '"></i> ' + grp.id : '',
        i === 0 ? grp.slots : '',
        s ? esc(s.addr) : '<span class="mute">no servers</span>',
        s ? esc(s.role) : '',
        btns,
      ]));
    });
  });
  $('groups').innerHTML = g.join('');

  $('proxies').innerHTML = row(['id', 'addr', 'admin', 'state', 'registered', 'fenced'], true) + o.proxies.map(function (p) {
    return row([esc(p.id), esc(p.addr || '-'), esc(p.adminAddr || '-'), esc(p.state), p.registered ? 'yes' : 'no',
      p.fence ? '<span class="warn">yes: ' + esc(p.fence.reason) + ' (' + esc(p.fence.at) + ')</span>' : 'no']);
  }).join('') + (o.proxies.length ? '' : '<tr><td colspan="6" class="mute">no proxies</td></tr>');
  $('barriers').innerHTML = o.barriers.map(function (b) {
    return 'barrier ' + b.seq + ' (' + b.slots.length + ' slots) waits for acks from ' + esc(b.waitingFor.join(', '));
  }).join('<br>');
}

function renderMigrations(list) {
  var order = { running: 0, cancelling: 1, paused: 2, pending: 3 };
  list = list.slice().sort(function (a, b) {
    var x = order[a.state] === undefined ? 9 : order[a.state], y = order[b.state] === undefined ? 9 : order[b.state];
    return x - y || String(b.createdAt).localeCompare(String(a.createdAt));
  }).slice(0, 30);
  var out = [row(['id', 'state', 'slots', 'from → to', 'progress', 'keys moved', 'keys/s', 'ETA', 'phase', ''], true)];
  list.forEach(function (m) {
    var p = m.progress || {};
    var pct = p.slotsTotal ? (100 * p.slotsDone) / p.slotsTotal : 0;
    var first = m.slots[0], last = m.slots[m.slots.length - 1];
    var btns = '';
    if (m.state === 'running' || m.state === 'pending') btns += '<button data-mig="pause" data-id="' + esc(m.id) + '">pause</button> ';
    if (m.state === 'paused') btns += '<button data-mig="resume" data-id="' + esc(m.id) + '">resume</button> ';
    if (m.state === 'running' || m.state === 'pending' || m.state === 'paused') {
      btns += '<button class="danger" data-mig="cancel" data-id="' + esc(m.id) + '">cancel</button>';
    }
    out.push(row([
      esc(m.id), esc(m.state) + (m.error ? '<br><span class="warn">' + esc(m.error) + '</span>' : ''),
      m.slots.length ? first + (last !== first ? '-' + last : '') : '-',
      esc(m.from.join(',')) + ' → ' + m.to,
      '<span class="bar"><i style="width:' + pct.toFixed(1) + '%"></i></span> ' + p.slotsDone + '/' + p.slotsTotal,
      p.keysMoved, Math.round(p.rate || 0), fmtSecs(p.etaSeconds), esc(p.phase || ''), btns,
    ]));
  });
  if (!list.length) out.push('<tr><td colspan="10" class="mute">no migrations</td></tr>');
  $('migrations').innerHTML = out.join('');
}

// ------------------------------------------------------------------ polling
var busy = false;
function refresh() {
  if (busy) return Promise.resolve();
  busy = true;
  return Promise.all([api('GET', '/api/overview'), api('GET', '/api/slots'), api('GET', '/api/migrations')])
    .then(function (r) {
      renderOverview(r[0]);
      renderSlots(r[1], r[0].groups);
      renderMigrations(r[2]);
      pollError = null;
      showAuth(false);
      $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    })
    .catch(function (err) {
      pollError = describe(err);
      $('updated').textContent = 'refresh failed at ' + new Date().toLocaleTimeString();
    })
    .then(function () { busy = false; renderErrors(); });
}

// ------------------------------------------------------------------ actions
function num(form, name) {
  var v = form.elements[name].value.trim();
  return v === '' ? undefined : Number(v);
}
$('authForm').addEventListener('submit', function (ev) {
  ev.preventDefault();
  var t = $('token').value.trim();
  if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
  $('token').value = '';
  refresh();
});
$('addServerForm').addEventListener('submit', function (ev) {
  ev.preventDefault();
  var f = ev.target;
  act(api('POST', '/api/groups/:gid/servers', { gid: num(f, 'gid') }, { addr: f.elements.addr.value.trim() }), function () { f.reset(); });
});
$('addGroupForm').addEventListener('submit', function (ev) {
  ev.preventDefault();
  var f = ev.target;
  act(api('POST', '/api/groups', {}, { id: num(f, 'id') }), function () { f.reset(); });
});
$('migrateForm').addEventListener('submit', function (ev) {
  ev.preventDefault();
  var f = ev.target;
  var body = { from: num(f, 'from'), to: num(f, 'to'), group: num(f, 'group') };
  var throttle = num(f, 'throttle');
  if (throttle !== undefined) body.throttle = throttle;
  act(api('POST', '/api/migrations', {}, body), function (r) {
    if (r && r.task === null) actionErrors.push(esc('slots ' + body.from + '-' + body.to + ' are already online in group ' + body.group + ': nothing to do'));
    renderErrors();
  });
});
$('planBtn').addEventListener('click', function () {
  api('GET', '/api/rebalance').then(function (plan) {
    var moves = plan.moves.map(function (m) {
      return m.kind + ' slots ' + m.first + '-' + m.last + ': ' + (m.kind === 'assign' ? 'offline' : 'group ' + m.from) + ' → group ' + m.to;
    });
    $('plan').innerHTML = '<pre>' + esc((plan.summary || []).concat(moves.length ? moves : ['nothing to move']).join(String.fromCharCode(10))) + '</pre>';
  }).catch(actionFailed);
});
$('runBtn').addEventListener('click', function () {
  if (!window.confirm('Run the rebalance plan now? Slots will be migrated between groups.')) return;
  act(api('POST', '/api/rebalance', {}, { confirm: true }), function (r) {
    $('plan').innerHTML = '<pre>' + esc('started ' + r.tasks.length + ' migration(s): ' + r.tasks.map(function (t) { return t.id; }).join(', ')) + '</pre>';
  });
});
document.addEventListener('click', function (ev) {
  var b = ev.target.closest ? ev.target.closest('button') : null;
  if (!b) return;
  var d = b.dataset;
  if (d.dismiss !== undefined) { actionErrors.splice(Number(d.dismiss), 1); renderErrors(); return; }
  if (d.promote !== undefined) {
    if (window.confirm('Promote ' + d.promote + ' to master of group ' + d.gid + '?')) {
      act(api('POST', '/api/groups/:gid/promote', { gid: d.gid }, { addr: d.promote }));
    }
  } else if (d.removeServer !== undefined) {
    if (window.confirm('Remove ' + d.removeServer + ' from group ' + d.gid + '?')) {
      act(api('DELETE', '/api/groups/:gid/servers/:addr', { gid: d.gid, addr: d.removeServer }));
    }
  } else if (d.removeGroup !== undefined) {
    if (window.confirm('Remove group ' + d.removeGroup + '?')) act(api('DELETE', '/api/groups/:gid', { gid: d.removeGroup }));
  } else if (d.mig !== undefined) {
    if (d.mig !== 'cancel' || window.confirm('Cancel migration ' + d.id + '?')) {
      var op = { id: d.id };
      if (d.mig === 'pause') act(api('POST', '/api/migrations/:id/pause', op));
      else if (d.mig === 'resume') act(api('POST', '/api/migrations/:id/resume', op));
      else act(api('POST', '/api/migrations/:id/cancel', op));
    }
  }
});

refresh();
setInterval(refresh, 2000);
</script></body></html>
`;
