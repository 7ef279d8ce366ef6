/**
 * The dashboard page's stylesheet (the text inside its one <style> element), joined into the
 * page by page.ts. Invariant: plain CSS with no url(): the page's CSP allows no style, font or
 * image host, so nothing here may load anything.
 *
 * A template literal: the text inside must not use backticks, `${` or backslashes.
 */
export const DASHBOARD_STYLES = `:root{--bg:#f6f7f9;--card:#fff;--line:#dde1e6;--ink:#1d232b;--mute:#6b7480;--err:#b3261e}
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
input{font:inherit;padding:2px 6px;border:1px solid #9aa4ae;border-radius:4px;width:90px}input.wide{width:180px}input[type=checkbox]{width:auto;margin:0}
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
.overview{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
#qpsChart{border:1px solid var(--line);border-radius:6px;padding:4px 8px}#qpsChart svg{display:block}
.maphead{display:flex;gap:16px;align-items:center;margin-bottom:4px}.maphead label{display:inline-flex;gap:4px;align-items:center}
.heatbar{display:inline-block;width:120px;height:10px;border-radius:3px;vertical-align:middle;background:linear-gradient(90deg,hsl(55,95%,78%),hsl(28,95%,60%),hsl(0,90%,42%))}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:var(--err);font-weight:600}.ok{color:#2e7d4f}
tr.failover td{background:#fff4e5}
#topologyAlarm{display:none;border:2px solid var(--err);background:#fdecea;color:var(--err);border-radius:6px;padding:8px 12px;margin-bottom:8px}#topologyAlarm.show{display:block}
`;
