/**
 * The nemesis's fault catalogue and scheduler (not a test file itself). Faults: kill -9 and
 * SIGSTOP/SIGCONT of a redis master or replica (the CURRENT master, read from etcd at fault
 * time), kill -9 or SIGSTOP of a proxy (restarted with its --id and ports), kill -9 of the
 * agent and of the runner (the dashboard), kill or pause of one etcd member, and a cut of the
 * relayed proxy's etcd link.
 *
 * Invariants:
 * - Every random number comes from one seeded generator, drawn in a fixed order per step
 *   whatever happened meanwhile, so a seed replays the same plan (times, kinds, targets,
 *   durations); only whether a step is skipped (its target busy) depends on timing.
 * - At most two faults at once, at most one per target, at most one etcd member and one
 *   server per group: the system is never asked to survive what it cannot (quorum loss, a
 *   group with no server).
 * - healAll() leaves every process running and unpaused and the relay forwarding.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ServerRole } from '@reborn/coordinator';
import { rng } from './helpers.js';
import { GROUPS, signalPid, type NemesisCluster } from './nemesis-cluster.js';

export type FaultKind =
  | 'redis-kill'
  | 'redis-pause'
  | 'proxy-kill'
  | 'proxy-pause'
  | 'agent-kill'
  | 'runner-kill'
  | 'etcd-kill'
  | 'etcd-pause'
  | 'relay-cut';

const KINDS: readonly FaultKind[] = ['redis-kill', 'redis-pause', 'proxy-kill', 'proxy-pause', 'agent-kill', 'runner-kill', 'etcd-kill', 'etcd-pause', 'relay-cut'];
/** Redis faults are drawn this many times as often as one other kind: they are what HA and migrations must absorb. */
const REDIS_WEIGHT = 2;

interface ActiveFault {
  kind: FaultKind;
  /** What is busy while it lasts: `group:2`, `proxy:1`, `agent`, `etcd`, … */
  target: string;
  what: string;
  heal: () => Promise<void>;
  healed: Promise<void> | null;
}

export interface FaultLogEntry {
  atMs: number;
  line: string;
}

export class Nemesis {
  private readonly random: () => number;
  private readonly active = new Set<ActiveFault>();
  private readonly startedAt = Date.now();
  readonly log: FaultLogEntry[] = [];
  readonly counts = new Map<FaultKind, number>();
  /** Faults whose step was drawn but skipped (target busy, nothing to act on). */
  skipped = 0;
  private stopped = false;

  constructor(
    private readonly cluster: NemesisCluster,
    seed: number,
    private readonly print: (line: string) => void,
  ) {
    this.random = rng(seed);
  }

  /** Logs something that happened (not a fault injected) with its time offset. */
  event(line: string): void {
    this.note(line);
  }

  private note(line: string): void {
    const atMs = Date.now() - this.startedAt;
    this.log.push({ atMs, line });
    this.print(`[nemesis +${(atMs / 1000).toFixed(1)}s] ${line}`);
  }

  /** Injects faults until `phaseMs` has passed, then heals whatever is still active. */
  async run(phaseMs: number): Promise<void> {
    const end = this.startedAt + phaseMs;
    while (!this.stopped && Date.now() < end) {
      // Drawn together, always in this order: a skipped step consumes the same numbers.
      const gap = 500 + Math.floor(this.random() * 3500);
      const kindDraw = this.random();
      const targetDraw = this.random();
      const roleDraw = this.random();
      const durationMs = 1000 + Math.floor(this.random() * 7000);
      const maxAtOnce = this.random() < 0.4 ? 1 : 2;
      await sleep(Math.min(gap, Math.max(0, end - Date.now())));
      if (Date.now() >= end) break;
      if (this.active.size >= maxAtOnce) {
        this.skipped++;
        continue;
      }
      const kind = pickKind(kindDraw);
      const fault = await this.inject(kind, targetDraw, roleDraw).catch((err: Error) => {
        this.note(`${kind}: could not inject: ${err.message}`);
        return null;
      });
      if (fault === null) {
        this.skipped++;
        continue;
      }
      this.active.add(fault);
      this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
      this.note(`${fault.what} (heals in ${(durationMs / 1000).toFixed(1)} s)`);
      void sleep(durationMs).then(() => this.healOne(fault));
    }
    await this.healAll();
  }

  /** Heals every active fault now and waits for the heals to finish. */
  async healAll(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.active].map((f) => this.healOne(f)));
  }

  private healOne(f: ActiveFault): Promise<void> {
    if (f.healed === null) {
      f.healed = f
        .heal()
        .then(() => this.note(`healed: ${f.what}`))
        .catch((err: Error) => this.note(`heal of ${f.what} failed: ${err.message}`))
        .finally(() => this.active.delete(f));
    }
    return f.healed;
  }

  private busy(target: string): boolean {
    return [...this.active].some((f) => f.target === target);
  }

  private fault(kind: FaultKind, target: string, what: string, heal: () => Promise<void>): ActiveFault | null {
    return this.busy(target) ? null : { kind, target, what, heal, healed: null };
  }

  private async inject(kind: FaultKind, targetDraw: number, roleDraw: number): Promise<ActiveFault | null> {
    const c = this.cluster;
    switch (kind) {
      case 'redis-kill':
      case 'redis-pause': {
        const gid = GROUPS[Math.floor(targetDraw * GROUPS.length)]!;
        if (this.busy(`group:${gid}`)) return null;
        const role = roleDraw < 0.7 ? ServerRole.Master : ServerRole.Replica;
        const group = await c.group(gid);
        if (group === null) throw new Error(`etcd did not answer for group ${gid}`);
        const server = group.servers.find((s) => s.role === role);
        if (!server) throw new Error(`group ${gid} has no ${role} in etcd`);
        const pid = await c.redisPid(server.addr);
        if (pid === null) throw new Error(`no running redis-server at ${server.addr} (group ${gid} ${role})`);
        const what = `${kind === 'redis-kill' ? 'kill -9' : 'SIGSTOP'} redis ${role} ${server.addr} of group ${gid} (pid ${pid})`;
        if (kind === 'redis-kill') {
          signalPid(pid, 'SIGKILL');
          // The agent restarts it (or holds it until HA fails its group over): nothing to heal.
          return this.fault(kind, `group:${gid}`, what, async () => undefined);
        }
        signalPid(pid, 'SIGSTOP');
        return this.fault(kind, `group:${gid}`, what, async () => void signalPid(pid, 'SIGCONT'));
      }
      case 'proxy-kill':
      case 'proxy-pause': {
        const i = Math.floor(targetDraw * c.proxies.length);
        if (this.busy(`proxy:${i}`)) return null;
        const slot = c.proxies[i]!;
        if (!slot.proc.running) throw new Error(`proxy ${slot.id} is not running`);
        if (kind === 'proxy-kill') {
          const pid = slot.proc.pid;
          slot.held = true;
          await slot.proc.kill('SIGKILL');
          return this.fault(kind, `proxy:${i}`, `kill -9 proxy ${slot.id} ${slot.port} (pid ${pid})`, async () => c.restartProxy(slot));
        }
        await slot.proc.pause();
        return this.fault(kind, `proxy:${i}`, `SIGSTOP proxy ${slot.id} ${slot.port} (pid ${slot.proc.pid})`, async () => slot.proc.resume());
      }
      case 'agent-kill': {
        if (this.busy('agent') || !c.agent?.running) return null;
        const pid = c.agent.pid;
        await c.agent.kill();
        return this.fault(kind, 'agent', `kill -9 agent (pid ${pid})`, () => c.restartAgent());
      }
      case 'runner-kill': {
        const d = c.dashboard;
        if (this.busy('runner') || !d?.running) return null;
        const pid = d.pid;
        await d.terminate('SIGKILL');
        return this.fault(kind, 'runner', `kill -9 runner (dashboard pid ${pid})`, () => c.startDashboard());
      }
      case 'etcd-kill':
      case 'etcd-pause': {
        if (this.busy('etcd')) return null;
        const i = Math.floor(targetDraw * c.etcd.members.length);
        const m = c.etcd.members[i]!;
        const via = i === 0 ? ' (the relay target)' : '';
        if (kind === 'etcd-kill') {
          await m.kill('SIGKILL');
          return this.fault(kind, 'etcd', `kill -9 etcd member ${i + 1} ${m.clientUrl}${via}`, () => m.restart());
        }
        await m.pause();
        return this.fault(kind, 'etcd', `SIGSTOP etcd member ${i + 1} ${m.clientUrl}${via}`, async () => m.resume());
      }
      case 'relay-cut': {
        if (this.busy('relay')) return null;
        c.relay.cut();
        return this.fault(kind, 'relay', `cut the etcd link of the relayed proxy`, async () => c.relay.heal());
      }
    }
  }

  summary(): string {
    const byKind = KINDS.map((k) => `${k} ${this.counts.get(k) ?? 0}`).join(', ');
    const total = [...this.counts.values()].reduce((a, b) => a + b, 0);
    return `${total} faults (${byKind}); ${this.skipped} steps skipped`;
  }
}

function pickKind(draw: number): FaultKind {
  const weighted = KINDS.flatMap((k) => (k.startsWith('redis-') ? Array<FaultKind>(REDIS_WEIGHT).fill(k) : [k]));
  return weighted[Math.floor(draw * weighted.length)]!;
}
