/**
 * Human-readable output of reborn-config: pure functions from the views of servers.ts to
 * text. `--json` prints the views themselves (the same bodies the REST API returns).
 */
import type { MigrationTask } from '@reborn/coordinator';
import { formatSlotList, type BarrierView, type GroupView, type ProxyView, type RebalancePlanView, type SlotRange, type SlotView } from './servers.js';

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function formatGroups(groups: readonly GroupView[]): string {
  if (groups.length === 0) return 'no groups\n';
  return table(
    ['GROUP', 'SLOTS', 'MASTER', 'REPLICAS', 'IN-SYNC', 'MIN-IN-SYNC', 'WANT-REPLICAS', 'DURABLE-WRITES'],
    groups.map((g) => {
      const inSync = new Set(g.inSync);
      const replicas = g.servers.filter((s) => s.role === 'replica');
      return [
        String(g.id),
        String(g.slots),
        g.servers.find((s) => s.role === 'master')?.addr ?? '-',
        replicas.map((s) => (inSync.has(s.addr) ? s.addr : `${s.addr}(not in sync)`)).join(',') || '-',
        inSyncCount(g),
        settingText(g.minInSync),
        settingText(g.wantReplicas),
        durabilityMarker(g),
      ];
    }),
  );
}

/** `1/2`: members of the in-sync set of the group's replicas; `-` for a group without servers. */
function inSyncCount(g: GroupView): string {
  if (g.servers.length === 0) return '-';
  return `${g.inSync.length}/${g.servers.filter((s) => s.role === 'replica').length}`;
}

function settingText(v: number | null): string {
  return v === null ? '-' : String(v);
}

/** Empty when durable writes wait for the in-sync set as they should; the state in capitals otherwise. */
export function durabilityMarker(g: GroupView): string {
  if (g.durability === 'degraded') return 'DEGRADED';
  if (g.durability === 'refusing') return 'REFUSING';
  return '';
}

/** The result of `group set`: the settings, the in-sync count and, when not ok, what that means. */
export function formatGroupSettings(g: GroupView): string {
  const base = `group ${g.id}: min-in-sync ${g.minInSync ?? 'none'}, want-replicas ${g.wantReplicas ?? 'none'}, in-sync ${inSyncCount(g)}`;
  if (g.durability === 'degraded') return `${base} (DEGRADED: the master alone acknowledges durable writes)\n`;
  if (g.durability === 'refusing') return `${base} (REFUSING durable writes: ${g.inSync.length} in sync, min-in-sync ${g.minInSync})\n`;
  return `${base}\n`;
}

function rangeText(first: number, last: number): string {
  return first === last ? String(first) : `${first}-${last}`;
}

/** `0-511 online group 1`, `512-515 migrating group 1→2`, `516-1023 offline`. */
export function formatSlotRange(r: SlotRange): string {
  const range = rangeText(r.first, r.last);
  if (r.state === 'offline') return `${range} offline`;
  if (r.state === 'online') return `${range} online group ${r.group}`;
  return `${range} ${r.state} group ${r.from}→${r.to}`;
}

export function formatSlotRanges(ranges: readonly SlotRange[]): string {
  return ranges.map(formatSlotRange).join('\n') + '\n';
}

export function formatSlotInfo(s: SlotView): string {
  const migration = s.migration === null ? '' : ` (migration ${s.migration})`;
  switch (s.state) {
    case 'offline':
      return `slot ${s.id}: offline${migration}\n`;
    case 'online':
      return `slot ${s.id}: online in group ${s.group}, master ${s.master ?? '-'}${migration}\n`;
    default:
      return `slot ${s.id}: ${s.state} from group ${s.from} to group ${s.to}, master ${s.master ?? '-'}${migration}\n`;
  }
}

/** 75 → `1m15s`; null → `?`. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Bytes as an operator reads them: 512 B, 3.2 MB, 1.4 GB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  for (; v >= 1024 && i < units.length - 1; i++) v /= 1024;
  return `${v.toFixed(1)} ${units[i]}`;
}

function progressText(t: MigrationTask): string {
  const p = t.progress;
  const bytes = p.bytesMoved === undefined ? '' : ` (${formatBytes(p.bytesMoved)})`;
  return `${p.slotsDone}/${p.slotsTotal} slots, ${p.keysMoved} keys moved${bytes}`;
}

/** The runner's pace while keys move: chunk size, the source's latency against its target, the big key being copied. */
function paceText(t: MigrationTask): string {
  const p = t.progress;
  const parts: string[] = [];
  if (p.batchKeys !== undefined) parts.push(`${p.batchKeys} keys/chunk`);
  if (p.sourceLatencyMs !== undefined) parts.push(`source ${p.sourceLatencyMs} ms (target ${t.maxSourceLatencyMs})`);
  if (p.bigKey) parts.push(`big ${p.bigKey.type} ${p.bigKey.key}: ${p.bigKey.done}/${p.bigKey.total}`);
  return parts.join(', ');
}

export function formatMigrations(tasks: readonly MigrationTask[]): string {
  if (tasks.length === 0) return 'no migrations\n';
  return table(
    ['ID', 'STATE', 'SLOTS', 'FROM', 'TO', 'PROGRESS', 'PACE', 'WAITING', 'ERROR'],
    tasks.map((t) => [
      t.id, t.state, formatSlotList(t.slots), t.from.join(',') || '-', String(t.to), progressText(t),
      t.state === 'running' ? paceText(t) : '', t.progress.waiting ?? '', t.error ?? '',
    ]),
  );
}

/** One progress line: `migration m1 running: 12/64 slots, 1234 keys moved, 450 keys/s, ETA 3s (moving 12-15)`. */
export function formatProgress(t: MigrationTask): string {
  const p = t.progress;
  const eta = t.state === 'running' ? `, ETA ${formatDuration(p.etaSeconds)}` : '';
  const phase = p.phase ? ` (${p.phase})` : '';
  const pace = t.state === 'running' ? paceText(t) : '';
  return `migration ${t.id} ${t.state}: ${progressText(t)}, ${Math.round(p.rate)} keys/s${eta}${pace ? `; ${pace}` : ''}${phase}`;
}

/** The final line of a finished migration. */
export function formatMigrationSummary(t: MigrationTask, elapsedMs: number): string {
  return `migration ${t.id} done: slots ${formatSlotList(t.slots)} online in group ${t.to}, ${t.progress.keysMoved} keys moved in ${formatDuration(elapsedMs / 1000)}`;
}

export function formatProxies(proxies: readonly ProxyView[], barriers: readonly BarrierView[] = []): string {
  // The CLUSTER column only when some proxy has a Redis Cluster face: most products have none.
  const cluster = proxies.some((p) => p.clusterAddr !== null);
  let out = proxies.length === 0
    ? 'no proxies\n'
    : table(
        ['ID', 'STATE', 'ADDR', 'ADMIN', ...(cluster ? ['CLUSTER'] : []), 'PID', 'HOST', 'STARTED', 'FENCE'],
        proxies.map((p) => [
          p.id,
          p.state,
          p.addr ?? '-',
          p.adminAddr ?? '-',
          ...(cluster ? [p.clusterAddr ?? '-'] : []),
          p.pid === null ? '-' : String(p.pid),
          p.host ?? '-',
          p.startedAt ?? '-',
          [p.fence ? `${p.fence.reason} at ${p.fence.at}` : '', p.fencedReason ?? ''].filter((t) => t !== '').join('; '),
        ]),
      );
  for (const b of barriers) {
    out += `barrier ${b.seq} (slots ${formatSlotList(b.slots)}) is waiting for acks from: ${b.waitingFor.join(', ')}\n`;
  }
  return out;
}

export function formatPlan(plan: RebalancePlanView, confirmed: boolean): string {
  if (plan.moves.length === 0) return 'slots are balanced: nothing to move\n';
  const lines = [...plan.summary];
  if (lines.length === 0) {
    for (const m of plan.moves) lines.push(`move slots ${rangeText(m.first, m.last)} from group ${m.from} to group ${m.to}`);
  }
  if (!confirmed) lines.push('dry run: nothing was moved; run "slot rebalance --confirm" to carry out this plan');
  return lines.join('\n') + '\n';
}

/** `--json` output: stable, indented, one trailing newline. */
export function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}
