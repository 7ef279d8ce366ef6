/**
 * What the HA leader writes to etcd besides the groups: server health records (online /
 * offline) and events, each with a log line. Invariant: every write is guarded by the
 * leader's election key (a deposed leader's late write fails), nothing is written once the
 * leadership's signal has aborted, and a failed write is logged, never thrown: the records
 * are bookkeeping and must not stop a failover or a round.
 */
import type { Logger } from 'pino';
import { AgentEventKind, ServerHealthState, type AgentEvent, type AgentStore } from '@reborn/coordinator';
import type { Probe } from './ha-probe.js';
import type { Leadership } from '@reborn/coordinator';

export type NewAgentEvent = Omit<AgentEvent, 'seq' | 'at' | 'agent'>;

export class HaRecords {
  constructor(
    private readonly agentId: string,
    private readonly agents: AgentStore,
    private readonly leadership: Leadership,
    private readonly log: Logger,
  ) {}

  async markOffline(p: Probe, signal: AbortSignal, reason: string): Promise<void> {
    if (signal.aborted) return;
    p.offline = true;
    this.log.warn({ server: p.addr, group: p.group, reason, lastOkAt: new Date(p.lastOkAt).toISOString() }, 'server offline');
    await this.health(p, ServerHealthState.Offline, reason);
    await this.event(signal, { kind: AgentEventKind.ServerOffline, group: p.group, message: `${p.addr} offline: ${reason}`, data: { server: p.addr, reason } });
  }

  async markOnline(p: Probe, signal: AbortSignal, reason: string): Promise<void> {
    if (signal.aborted) return;
    p.offline = false;
    this.log.info({ server: p.addr, group: p.group, reason }, 'server online');
    await this.health(p, ServerHealthState.Online, reason);
    await this.event(signal, { kind: AgentEventKind.ServerOnline, group: p.group, message: `${p.addr} online: ${reason}`, data: { server: p.addr, reason } });
  }

  async event(signal: AbortSignal, ev: NewAgentEvent): Promise<void> {
    if (signal.aborted) return;
    try {
      await this.agents.appendEvent({ ...ev, at: new Date().toISOString(), agent: this.agentId }, this.leadership.guardKey());
    } catch (err) {
      this.log.warn({ kind: ev.kind, err: (err as Error).message }, 'cannot record event in etcd');
    }
  }

  private async health(p: Probe, state: ServerHealthState, reason: string): Promise<void> {
    try {
      await this.agents.putServerHealth({ addr: p.addr, group: p.group, state, since: new Date().toISOString(), reason }, this.leadership.guardKey());
    } catch (err) {
      this.log.warn({ server: p.addr, err: (err as Error).message }, 'cannot write server health record');
    }
  }
}
