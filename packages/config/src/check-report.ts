/**
 * `reborn-config check` for people: a pure function from a CheckResult to text. (`--json`
 * prints the result itself.) Every section says what it counts and, when it shows fewer
 * examples than it counted, how many it left out — so a short report never reads as "that
 * is all".
 */
import { table } from './output.js';
import { MigrationState, SlotState } from '@reborn/coordinator';
import { formatSlotList } from './servers.js';
import { CHECK_EXIT, checkExitCode, type CheckResult, type SlotProblem, type Tally } from './check-model.js';

function more<T>(t: Tally<T>): string[] {
  const left = t.count - t.examples.length;
  return left > 0 ? [`  … and ${left} more`] : [];
}

function homes(h: readonly number[]): string {
  if (h.length === 0) return 'its slot is offline';
  if (h.length === 1) return `belongs to group ${h[0]}`;
  return `belongs to group ${h.join(' or ')} (slot moving)`;
}

export function formatCheckReport(r: CheckResult): string {
  const out: string[] = [];
  out.push(`check of product ${r.product} (slot table at etcd revision ${r.revision})${r.fix ? ', with --fix' : ''}: ${r.complete ? 'complete' : 'INCOMPLETE'}`);
  out.push('');

  const dash = (n: number, show: boolean) => (show ? String(n) : '-');
  out.push(
    table(
      ['GROUP', 'MASTER', 'KEYS', 'STRAYS', 'DUPLICATES', 'MOVED', 'LEFT', 'STATUS'],
      r.groups.map((g) => [
        String(g.group),
        g.master ?? '-',
        String(g.keysScanned),
        String(g.strays),
        String(g.duplicates),
        dash(g.moved, r.fix),
        dash(g.left, r.fix),
        g.complete ? 'scanned' : (g.error ?? 'not scanned'),
      ]),
    ).trimEnd(),
  );

  out.push('');
  out.push(`strays: ${r.strays.count}${r.strays.count > 0 ? ` in ${r.straySlots} slot(s)` : ''} (keys in a group their slot does not belong to; clients cannot reach them)`);
  for (const s of r.strays.examples) out.push(`  "${s.key}" slot ${s.slot} in group ${s.group}: ${homes(s.homes)}`);
  out.push(...more(r.strays));

  out.push(`duplicates: ${r.duplicates.count} (keys in a wrong group that also exist at home; never overwritten)`);
  for (const d of r.duplicates.examples) out.push(`  "${d.key}" slot ${d.slot} in group ${d.group}, and at home in group ${d.alsoIn.join(' and ')}`);
  out.push(...more(r.duplicates));

  const slotCount = r.slotProblems.reduce((n, p) => n + p.slots.length, 0);
  out.push(`slot problems: ${slotCount} slot(s)`);
  for (const p of r.slotProblems) out.push(`  ${p.kind}: ${p.detail}`);

  if (r.fixed) {
    out.push(`fix: moved ${r.fixed.moved.count}, left ${r.fixed.left.count}, gone before moving ${r.fixed.gone}`);
    for (const m of r.fixed.moved.examples) out.push(`  moved "${m.key}" slot ${m.slot}: group ${m.from} → group ${m.to}`);
    out.push(...more(r.fixed.moved));
    for (const l of r.fixed.left.examples) out.push(`  left "${l.key}" slot ${l.slot} in group ${l.group}: ${l.reason}: ${l.detail}`);
    out.push(...more(r.fixed.left));
  }

  if (r.errors.length > 0) {
    out.push(`errors: ${r.errors.length}`);
    for (const e of r.errors) out.push(`  ${e.group === null ? '' : `group ${e.group}: `}${e.code} ${e.message}`);
  }

  out.push('');
  const code = checkExitCode(r);
  if (code === CHECK_EXIT.clean) out.push(r.fixed && r.fixed.moved.count > 0 ? 'result: clean after the fix' : 'result: clean');
  else if (code === CHECK_EXIT.problems) {
    const keys = r.fixed ? r.fixed.left.count : r.strays.count + r.duplicates.count;
    out.push(`result: ${keys} key(s) and ${slotCount} slot(s) need attention${r.complete ? '' : '; the check is incomplete (see errors)'}`);
  }
  else out.push('result: nothing wrong found, but the check is incomplete (see errors)');
  return out.join('\n') + '\n';
}

/** One sentence saying what is wrong and what to do about it. */
export function describeProblem(p: SlotProblem): string {
  const slots = `slot(s) ${formatSlotList(p.slots)}`;
  const moving = `${p.state} ${p.from}→${p.to}`;
  // pre_migrate is the barrier: proxies hold every request of the slot until it moves on.
  const effect =
    p.state === SlotState.PreMigrate
      ? `proxies hold every request of them (clients wait) until the slots leave pre_migrate`
      : `proxies serve them from group ${p.to}, moving each key from group ${p.from} as it is touched`;
  switch (p.kind) {
    case 'offline-with-keys': {
      const where = p.keys.map((k) => `${k.count} in group ${k.group}`).join(', ');
      return `${slots} offline, but keys of them exist (${where}): clients cannot reach them; put the slots online in the group holding them (slot set), or delete the keys`;
    }
    case 'transition-without-task': {
      const m = p.migration;
      const last = m === null ? 'no migration task has them (changed by hand?)' : `their last migration ${m.id} is ${m.state}${m.error ? ` (${m.error})` : ''}`;
      const todo = m?.state === MigrationState.Failed ? `fix the cause, then resume ${m.id} (migration resume)` : 'nothing will finish the move without an operator';
      return `${slots} ${moving} with no active migration: ${last}; ${effect}; ${todo}`;
    }
    case 'transition-without-runner':
      return `${slots} ${moving} for migration ${p.migration?.id} (${p.migration?.state}), but no migration runner is running: ${effect}; start one (reborn-config dashboard)`;
  }
}
