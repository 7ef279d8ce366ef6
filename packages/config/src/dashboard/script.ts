/**
 * The dashboard page's one inline script (vanilla JS, no build step), joined into the page by
 * page.ts; the page's CSP allows exactly this text by its SHA-256 hash. It polls the REST API
 * every 2 s and renders each section from its own response. Invariant: every API call goes
 * through `api(METHOD, '/api/route/:pattern', params, body)` with the route pattern exactly as
 * the route table declares it (test/dashboard.test.ts extracts and checks them), and every call
 * but GET carries `Content-Type: application/json`.
 *
 * A template literal: the text inside must not use backticks, `${` or backslashes.
 */
export const DASHBOARD_SCRIPT = `'use strict';
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
function fmtBytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return '-';
  var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  var i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + units[i];
}
function fmtNum(n) {
  if (n === null || n === undefined || !isFinite(n)) return '-';
  return Math.round(n).toLocaleString('en-US');
}
function fmtQps(n) {
  if (n === null || n === undefined || !isFinite(n)) return '-';
  return n >= 100 ? fmtNum(n) : String(Math.round(n * 10) / 10);
}
// Heat colour of a slot's QPS: grey when idle, pale yellow to dark red on a log scale to the max.
function heat(v, max) {
  if (!(v > 0) || !(max > 0)) return '#e4e7eb';
  var t = Math.log(1 + v) / Math.log(1 + max);
  return 'hsl(' + Math.round(55 - 55 * t) + ',' + Math.round(95 - 5 * t) + '%,' + Math.round(78 - 36 * t) + '%)';
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
  if (method !== 'GET') headers['content-type'] = 'application/json';
  if (body !== undefined) init.body = JSON.stringify(body);
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

// slotQps: per-slot QPS of /api/stats (or null); in heat mode the cells show it instead of the owner.
function renderSlots(ranges, groups, slotQps) {
  var heatMode = !!$('heatToggle').checked;
  var max = 0;
  if (slotQps) slotQps.forEach(function (v) { if (v > max) max = v; });
  ranges.forEach(function (r) {
    for (var id = r.first; id <= r.last; id++) {
      var c = cells[id];
      if (!c) continue;
      var qps = slotQps ? slotQps[id] : null;
      var text = 'slot ' + id + ': ' + r.state + ', group ' + (r.group || '-') +
        (r.from !== undefined ? ', ' + r.from + '→' + r.to : '');
      c.className = 's ' + r.state;
      c.dataset.state = r.state;
      c.dataset.group = String(r.group);
      c.dataset.qps = qps === null || qps === undefined ? '' : String(qps);
      if (heatMode) {
        c.style.background = heat(qps, max);
      } else if (r.state === 'pre_migrate' || r.state === 'migrating') {
        c.style.background = 'repeating-linear-gradient(45deg,' + color(r.from) + ' 0 3px,' + color(r.to) + ' 3px 6px)';
      } else {
        c.style.background = color(r.group);
      }
      c.title = text;
      c.dataset.tip = text + (qps === null || qps === undefined ? '' : ', ' + fmtQps(qps) + ' req/s');
    }
  });
  if (heatMode) {
    $('legend').innerHTML = '<span><i class="sw" style="background:#e4e7eb"></i>idle</span>' +
      '<span>0 <i class="heatbar"></i> ' + esc(fmtQps(max)) + ' req/s (log scale; the busiest slot is darkest)</span>' +
      (slotQps ? '' : '<span class="warn">no rates yet: they need two samples of a proxy</span>');
    return;
  }
  var items = groups.map(function (g) {
    return '<span><i class="sw" style="background:' + color(g.id) + '"></i>group ' + g.id + ' (' + g.slots + ')</span>';
  });
  items.push('<span><i class="sw" style="background:#c9ccd1;opacity:.55"></i>offline</span>');
  items.push('<span><i class="sw" style="background:repeating-linear-gradient(45deg,#888 0 3px,#ddd 3px 6px);outline:2px dashed #111;outline-offset:-2px"></i>pre_migrate (from/to stripes)</span>');
  items.push('<span><i class="sw" style="background:repeating-linear-gradient(45deg,#888 0 3px,#ddd 3px 6px);outline:2px solid #111;outline-offset:-2px"></i>migrating</span>');
  $('legend').innerHTML = items.join('');
}

// ------------------------------------------------------------------ tables
var qpsHistory = [];
// The chart covers this much time; refresh() also runs after actions, so trim by time, not count.
var QPS_WINDOW_MS = 120000;
function addQpsPoint(st) {
  var last = qpsHistory[qpsHistory.length - 1];
  // Concurrent refreshes can get the same shared sample: one point per sample.
  if (last && st.at <= last.at) return;
  qpsHistory.push({ at: st.at, qps: st.qps });
  while (qpsHistory.length && qpsHistory[0].at < st.at - QPS_WINDOW_MS) qpsHistory.shift();
}
// The per-slot rates of /api/stats, or null while there is no rate yet (then the map shows no heat).
function slotRates(st) {
  return st && st.qps !== null ? st.slotQps : null;
}
function renderChart() {
  var w = 260, h = 64, pad = 2;
  var pts = qpsHistory.filter(function (p) { return p.qps !== null; });
  var max = 0;
  pts.forEach(function (p) { if (p.qps > max) max = p.qps; });
  var top = max > 0 ? max * 1.15 : 1;
  var t1 = pts.length ? pts[pts.length - 1].at : 0;
  var span = QPS_WINDOW_MS;
  var xy = pts.map(function (p) {
    var x = w - pad - ((t1 - p.at) / span) * (w - 2 * pad);
    var y = h - pad - (p.qps / top) * (h - 2 * pad);
    return Math.max(pad, x).toFixed(1) + ',' + y.toFixed(1);
  });
  var svg = '<svg width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + ' ' + h + '" role="img" aria-label="total QPS">' +
    '<line x1="0" y1="' + (h - pad) + '" x2="' + w + '" y2="' + (h - pad) + '" stroke="#dde1e6"/>' +
    (xy.length > 1 ? '<polyline id="qpsLine" fill="none" stroke="#2e6bd1" stroke-width="1.5" points="' + xy.join(' ') + '"/>' : '') +
    '</svg>';
  $('qpsChart').innerHTML = '<span class="mute">total QPS, last 2 min (max ' + esc(fmtQps(max)) + ')</span>' + svg +
    (xy.length > 1 ? '' : '<span class="mute">waiting for samples…</span>');
}

// t: /api/overview's topologyAlarm — etcd lost or replaced the topology; every field escaped.
function renderTopologyAlarm(t) {
  var box = $('topologyAlarm');
  if (!t || !t.alarmed) { box.className = ''; box.innerHTML = ''; return; }
  var lines = ['<b>Topology alarm</b>: proxies keep serving their last slot table and HA failover is suspended until the topology is back (reborn-config topology restore).'];
  if (t.etcd) lines.push('etcd: ' + esc(t.etcd));
  (t.processes || []).forEach(function (p) {
    lines.push(esc(p.kind + ' ' + p.id) + ' <code>' + esc(p.reason) + '</code> since ' + esc(p.since) + ': ' + esc(p.message) + ' — ' + esc(p.effect));
  });
  if ((t.unreachable || []).length) lines.push('not answering: ' + esc(t.unreachable.join(', ')));
  box.innerHTML = lines.map(function (l) { return '<div>' + l + '</div>'; }).join('');
  box.className = 'show';
}

// o: /api/overview, st: /api/stats, sv: /api/servers (st and sv null when their call failed)
function renderOverview(o, st, sv) {
  $('product').textContent = o.product;
  renderTopologyAlarm(o.topologyAlarm);
  var by = o.slots.byState || {};
  var kpi = function (label, value, id) {
    return '<div class="kpi"' + (id ? ' id="' + id + '"' : '') + '><span class="mute">' + esc(label) + '</span><b>' + esc(value) + '</b></div>';
  };
  var down = sv && sv.down ? ' (' + sv.down + ' down)' : '';
  var deadProxies = st ? st.proxies.filter(function (p) { return !p.ok; }).length : 0;
  $('kpis').innerHTML = [
    kpi('total QPS', st ? fmtQps(st.qps) : '?', 'kpiQps'),
    kpi('keys', sv ? fmtNum(sv.keys) : '?', 'kpiKeys'),
    kpi('memory', sv ? fmtBytes(sv.usedMemory) + down : '?', 'kpiMemory'),
    kpi('products', (o.products || []).length),
    kpi('groups', o.groups.length),
    kpi('proxies', o.proxies.length + (deadProxies ? ' (' + deadProxies + ' not answering)' : '')),
    kpi('online slots', by.online || 0),
    kpi('pre_migrate', by.pre_migrate || 0),
    kpi('migrating', by.migrating || 0),
    kpi('offline slots', by.offline || 0),
    kpi('fences', o.fences.length),
    kpi('active migrations', o.migrations.length),
  ].join('');
  var notes = [];
  var others = (o.products || []).filter(function (p) { return p !== o.product; });
  if (others.length > 0) notes.push('other products in this etcd (each has its own dashboard): ' + others.map(esc).join(', '));
  if (!o.runnerAlive) notes.push('no migration runner is alive for this product');
  o.fences.forEach(function (f) { notes.push('proxy ' + esc(f.proxyId) + ' fenced at ' + esc(f.at) + ': ' + esc(f.reason)); });
  if (sv && sv.healthError) notes.push('HA health records could not be read: ' + esc(sv.healthError));
  $('notes').innerHTML = notes.join('<br>');

  var info = {};
  if (sv) sv.servers.forEach(function (x) { info[x.group + ' ' + x.addr] = x; });
  var g = [row(['group', 'slots', 'server', 'role', 'reports', 'lag', 'memory', 'keys', 'ops/s', 'in sync', ''], true)];
  o.groups.forEach(function (grp) {
    var servers = grp.servers.length ? grp.servers : [null];
    var members = {};
    (grp.inSync || []).forEach(function (a) { members[a] = true; });
    servers.forEach(function (s, i) {
      var x = s ? info[grp.id + ' ' + s.addr] : null;
      var btns = '';
      if (s) {
        if (s.role !== 'master') btns += '<button data-promote="' + esc(s.addr) + '" data-gid="' + grp.id + '">promote</button> ';
        btns += '<button class="danger" data-remove-server="' + esc(s.addr) + '" data-gid="' + grp.id + '">remove</button>';
      } else {
        btns = '<button class="danger" data-remove-group="' + grp.id + '">remove group</button>';
      }
      g.push(row([
        i === 0 ? '<i class="sw" style="background:' + color(grp.id) + '"></i> ' + grp.id + groupSettingsText(grp) : '',
        i === 0 ? grp.slots : '',
        s ? esc(s.addr) : '<span class="mute">no servers</span>',
        s ? esc(s.role) : '',
        s ? serverState(s, x) : '',
        x && x.ok ? lagText(x) : '',
        x && x.ok ? fmtBytes(x.usedMemory) : '',
        x && x.ok ? fmtNum(x.keys) : '',
        x && x.ok ? fmtNum(x.opsPerSec) : '',
        s ? inSyncText(s, members, grp) : '',
        btns,
      ]));
    });
  });
  $('groups').innerHTML = g.join('');

  var live = {};
  if (st) st.proxies.forEach(function (p) { live[p.id] = p; });
  $('proxies').innerHTML = row(['id', 'addr', 'admin', 'state', 'registered', 'fenced', 'QPS', 'sessions', 'commands', 'strays'], true) + o.proxies.map(function (p) {
    var l = live[p.id];
    var answered = l && l.ok;
    return row([esc(p.id), esc(p.addr || '-'), esc(p.adminAddr || '-'), esc(p.state), p.registered ? 'yes' : 'no',
      (p.fence ? '<span class="warn">yes: ' + esc(p.fence.reason) + ' (' + esc(p.fence.at) + ')</span>' : (l && l.fenced ? '<span class="warn">yes (says the proxy)</span>' : 'no')) +
        (p.fencedReason ? '<br><span class="warn">' + esc(p.fencedReason) + '</span>' : ''),
      l && !l.ok ? '<span class="bad">not answering: ' + esc(l.error || '?') + '</span>' : (answered ? fmtQps(l.qps) : '-'),
      answered ? fmtNum(l.sessions) : '-',
      answered ? fmtNum(l.commands) : '-',
      // Keys seen in a group that does not own their slot (--watch-strays): run reborn-config check.
      answered && typeof l.strays === 'number' ? (l.strays > 0 ? '<span class="warn">' + fmtNum(l.strays) + '</span>' : '0') : '-']);
  }).join('') + (o.proxies.length ? '' : '<tr><td colspan="10" class="mute">no proxies</td></tr>');
  $('barriers').innerHTML = o.barriers.map(function (b) {
    return 'barrier ' + b.seq + ' (' + b.slots.length + ' slots) waits for acks from ' + esc(b.waitingFor.join(', '));
  }).join('<br>');
}

// The group's durability settings under its id: in-sync count, minInSync, wantReplicas, and a
// marker when durable writes are acknowledged by the master alone (DEGRADED) or refused (REFUSING).
function groupSettingsText(grp) {
  var replicas = grp.servers.filter(function (s) { return s.role === 'replica'; }).length;
  var parts = ['in-sync ' + (grp.inSync || []).length + '/' + replicas];
  parts.push('min-in-sync ' + (grp.minInSync === null || grp.minInSync === undefined ? '-' : grp.minInSync));
  parts.push('want-replicas ' + (grp.wantReplicas === null || grp.wantReplicas === undefined ? '-' : grp.wantReplicas));
  var marker = '';
  if (grp.durability === 'degraded') marker = '<br><span class="bad" data-durability="degraded" title="durable writes are acknowledged by the master alone">DEGRADED</span>';
  if (grp.durability === 'refusing') marker = '<br><span class="bad" data-durability="refusing" title="fewer replicas in sync than min-in-sync: durable writes are refused">REFUSING</span>';
  return '<br><span class="mute gset">' + esc(parts.join(', ')) + '</span>' + marker;
}
// A server's place in its group's in-sync set: the master holds every write; a replica is in it or not.
function inSyncText(s, members, grp) {
  if (s.role === 'master') return '<span class="mute">-</span>';
  if (members[s.addr]) return '<span class="ok">yes</span>' + (grp.inSyncManaged ? '' : ' <span class="mute">(no HA set yet: every replica counts)</span>');
  return '<span class="bad">no</span>';
}
// A server's own view (INFO): its role, and a warning when it disagrees with etcd or is down.
function serverState(s, x) {
  if (!x) return '<span class="mute">?</span>';
  var ha = x.health && x.health.state === 'offline' ? '<br><span class="bad">HA: offline since ' + esc(x.health.since) + '</span>' : '';
  if (!x.ok) return '<span class="bad">down: ' + esc(x.error || '?') + '</span>' + ha;
  var out = esc(x.actualRole || '?');
  if (x.actualRole !== s.role) out = '<span class="bad">' + out + ' (etcd says ' + esc(s.role) + ')</span>';
  if (x.actualRole === 'replica') {
    out += ' of ' + esc(x.masterAddr || '?') + (x.linkUp ? ' <span class="ok">link up</span>' : ' <span class="bad">link down</span>');
  }
  return out + ha;
}
function lagText(x) {
  if (x.actualRole !== 'replica') return '<span class="mute">-</span>';
  var parts = [];
  if (x.lagBytes !== null) parts.push(fmtNum(x.lagBytes) + ' B');
  if (x.lastIoSeconds !== null) parts.push('io ' + x.lastIoSeconds + ' s ago');
  return parts.length ? esc(parts.join(', ')) : '-';
}

function renderEvents(list) {
  var out = [row(['#', 'time', 'kind', 'group', 'what happened', 'details'], true)];
  list.slice().reverse().forEach(function (e) {
    var d = e.data || {};
    var details = [];
    if (d.oldMaster !== undefined) details.push(esc(d.oldMaster) + ' → ' + esc(d.newMaster));
    if (d.lostBytesEstimate > 0) details.push('≥ ' + fmtNum(d.lostBytesEstimate) + ' B of writes may be lost');
    else if (d.lostBytesEstimate === 0) details.push('offsets equal at the last check');
    if (d.downForMs !== undefined) details.push('down ' + fmtNum(d.downForMs) + ' ms');
    if (d.tookMs !== undefined) details.push('took ' + fmtNum(d.tookMs) + ' ms');
    var failover = e.kind === 'failover' || e.kind === 'failover_failed';
    out.push('<tr' + (failover ? ' class="failover"' : '') + ' data-seq="' + e.seq + '"><td>' + [
      e.seq, esc(new Date(e.at).toLocaleString()), failover ? '<b>' + esc(e.kind) + '</b>' : esc(e.kind),
      e.group === undefined ? '-' : e.group, esc(e.message), details.join(', '),
    ].join('</td><td>') + '</td></tr>');
  });
  if (!list.length) out.push('<tr><td colspan="6" class="mute">no events</td></tr>');
  $('events').innerHTML = out.join('');
}

function renderMigrations(list) {
  var order = { running: 0, cancelling: 1, paused: 2, pending: 3 };
  list = list.slice().sort(function (a, b) {
    var x = order[a.state] === undefined ? 9 : order[a.state], y = order[b.state] === undefined ? 9 : order[b.state];
    return x - y || String(b.createdAt).localeCompare(String(a.createdAt));
  }).slice(0, 30);
  var out = [row(['id', 'state', 'slots', 'from → to', 'progress', 'keys moved', 'keys/s', 'ETA', 'pace', 'phase', ''], true)];
  list.forEach(function (m) {
    var p = m.progress || {};
    var pct = p.slotsTotal ? (100 * p.slotsDone) / p.slotsTotal : 0;
    var first = m.slots[0], last = m.slots[m.slots.length - 1];
    var btns = '';
    if (m.state === 'running' || m.state === 'pending') btns += '<button data-mig="pause" data-id="' + esc(m.id) + '">pause</button> ';
    if (m.state === 'paused' || m.state === 'failed') btns += '<button data-mig="resume" data-id="' + esc(m.id) + '">resume</button> ';
    if (m.state === 'running' || m.state === 'pending' || m.state === 'paused') {
      btns += '<button class="danger" data-mig="cancel" data-id="' + esc(m.id) + '">cancel</button>';
    }
    out.push(row([
      esc(m.id), esc(m.state) + (m.error ? '<br><span class="warn">' + esc(m.error) + '</span>' : '') +
        (p.waiting ? '<br><span class="warn">' + esc(p.waiting) + '</span>' : ''),
      m.slots.length ? first + (last !== first ? '-' + last : '') : '-',
      esc(m.from.join(',')) + ' → ' + m.to,
      '<span class="bar"><i style="width:' + Number(pct).toFixed(1) + '%"></i></span> ' + esc(p.slotsDone) + '/' + esc(p.slotsTotal),
      esc(p.keysMoved) + (p.bytesMoved !== undefined ? '<br><span class="mute">' + esc(fmtBytes(Number(p.bytesMoved))) + '</span>' : ''),
      Math.round(Number(p.rate) || 0), esc(fmtSecs(p.etaSeconds)), m.state === 'running' ? paceHtml(m) : '', esc(p.phase || ''), btns,
    ]));
  });
  if (!list.length) out.push('<tr><td colspan="11" class="mute">no migrations</td></tr>');
  $('migrations').innerHTML = out.join('');
}

// The runner's pace: keys per chunk, the source's latency against the task's target, the big key being copied.
function paceHtml(m) {
  var p = m.progress || {}, parts = [];
  if (p.batchKeys !== undefined) parts.push(esc(p.batchKeys) + ' keys/chunk');
  if (p.sourceLatencyMs !== undefined) parts.push('source ' + esc(p.sourceLatencyMs) + ' ms / ' + esc(m.maxSourceLatencyMs));
  if (p.bigKey) {
    var pct = p.bigKey.total ? (100 * p.bigKey.done) / p.bigKey.total : 0;
    parts.push('big ' + esc(p.bigKey.type) + ' ' + esc(p.bigKey.key) + ' <span class="bar"><i style="width:' + Number(pct).toFixed(1) + '%"></i></span>');
  }
  return parts.join('<br>');
}

// ------------------------------------------------------------------ polling
var busy = false;
var lastStats = null, lastRanges = null, lastGroups = null;
function refresh() {
  if (busy) return Promise.resolve();
  busy = true;
  // allSettled: each section renders from its own answer, so one failing call blanks nothing else.
  return Promise.allSettled([
    api('GET', '/api/overview'), api('GET', '/api/slots'), api('GET', '/api/migrations'),
    api('GET', '/api/stats'), api('GET', '/api/servers'), api('GET', '/api/events'),
  ])
    .then(function (r) {
      var ok = function (i) { return r[i].status === 'fulfilled' ? r[i].value : null; };
      var o = ok(0), ranges = ok(1), migrations = ok(2), st = ok(3), sv = ok(4), events = ok(5);
      lastStats = st;
      if (st) { addQpsPoint(st); renderChart(); }
      if (o) { lastGroups = o.groups; renderOverview(o, st, sv); }
      if (ranges) lastRanges = ranges;
      if (lastRanges && lastGroups) renderSlots(lastRanges, lastGroups, slotRates(lastStats));
      if (migrations) renderMigrations(migrations);
      if (events) renderEvents(events);
      var errors = r.filter(function (x) { return x.status === 'rejected'; }).map(function (x) { return describe(x.reason); });
      pollError = errors.length ? errors.join('<br>') : null;
      if (!errors.length) showAuth(false);
      $('updated').textContent = (errors.length ? 'refresh failed at ' : 'updated ') + new Date().toLocaleTimeString();
    })
    .catch(function (err) {
      // A rendering bug: shown, not swallowed.
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
// A setting of the group settings form: empty leaves it, none clears it (null), else the number
// (a bad one is sent as typed: the API's error names the field).
function setting(form, name) {
  var v = form.elements[name].value.trim();
  if (v === '') return undefined;
  if (v === 'none') return null;
  return /^[0-9]+$/.test(v) ? Number(v) : v;
}
$('groupSettingsForm').addEventListener('submit', function (ev) {
  ev.preventDefault();
  var f = ev.target;
  var body = { minInSync: setting(f, 'minInSync'), wantReplicas: setting(f, 'wantReplicas') };
  if (f.elements.force && f.elements.force.checked) body.force = true;
  act(api('PATCH', '/api/groups/:gid', { gid: num(f, 'gid') }, body), function () { f.reset(); });
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
$('heatToggle').addEventListener('change', function () {
  if (lastRanges && lastGroups) renderSlots(lastRanges, lastGroups, slotRates(lastStats));
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
`;
