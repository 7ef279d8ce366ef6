/**
 * What the proxy does with each parsed command, by the command table's policy:
 *
 *   unknown / unsupported → a Redis-style error, never a silent wrong answer
 *   wrong arity           → `-ERR wrong number of arguments for '<cmd>' command`
 *   route                 → keys must share one slot (else -CROSSSLOT); sent unchanged
 *   split                 → MGET/MSET/DEL/UNLINK/EXISTS/TOUCH: one part per master, merged
 *   fanout                → sent to every master, merged (SCRIPT LOAD/FLUSH/EXISTS)
 *   local                 → answered by the proxy (local-commands.ts)
 *
 * The request is put in the session's reply queue before any of this, so the reply order
 * is the request order whatever path produces the reply.
 */
import {
  encodeCommand,
  encodeError,
  keySlot,
  resolveCommand,
  checkArity,
  extractKeyIndexes,
  blocksConnection,
  type CommandInfo,
} from '@reborn/protocol';
import type { BackendPool } from './backend.js';
import { answerLocally, type LocalContext } from './local-commands.js';
import { AllOkMerge, ArrayAndMerge, FirstMerge, MgetMerge, SumMerge, type ClientRequest, type Merge } from './request.js';
import type { Router } from './router.js';
import type { Session } from './session.js';
import type { CommandStats } from './metrics.js';

const CROSSSLOT = encodeError("CROSSSLOT Keys in request don't hash to the same slot");
const NOT_READY = encodeError('ERR proxy not ready');
const NOAUTH = encodeError('NOAUTH Authentication required.');
const EMPTY = Buffer.alloc(0);

/** Commands an unauthenticated client may still send (as in Redis). */
const ALLOWED_BEFORE_AUTH = new Set(['auth', 'hello', 'quit']);

function printable(arg: Uint8Array, max = 128): string {
  const s = Buffer.from(arg.subarray(0, max)).toString('latin1');
  return s.replace(/[^\x20-\x7e]/g, '?');
}

export class Dispatcher {
  private readonly statIndex = new Map<CommandInfo, number>();
  private readonly unknownStat: number;

  constructor(
    private readonly router: Router,
    private readonly stats: CommandStats,
    private readonly local: LocalContext,
  ) {
    this.unknownStat = stats.indexOf('unknown');
  }

  dispatch(session: Session, args: Buffer[], raw: Buffer | null): void {
    const now = performance.now();
    const cmd = resolveCommand(args);
    if (cmd === undefined) {
      const req = session.enqueue(raw ?? EMPTY, this.unknownStat, now);
      const rest = args.slice(1, 4).map((a) => `'${printable(a)}'`).join(' ');
      req.resolve(encodeError(`ERR unknown command '${printable(args[0]!)}', with args beginning with: ${rest}`));
      return;
    }
    let stat = this.statIndex.get(cmd);
    if (stat === undefined) {
      stat = this.stats.indexOf(cmd.name);
      this.statIndex.set(cmd, stat);
    }
    const req = session.enqueue(raw ?? EMPTY, stat, now);
    if (!checkArity(cmd, args.length)) {
      req.resolve(encodeError(`ERR wrong number of arguments for '${cmd.name}' command`));
      return;
    }
    if (!session.authenticated && !ALLOWED_BEFORE_AUTH.has(cmd.name)) {
      req.resolve(NOAUTH);
      return;
    }
    const policy = cmd.policy;
    switch (policy.kind) {
      case 'route':
        this.route(session, req, cmd, args, raw);
        return;
      case 'split':
        this.split(session, req, cmd, args, raw, policy.merge);
        return;
      case 'local':
        answerLocally(this.local, session, req, cmd, args, raw);
        return;
      case 'fanout':
        this.fanout(session, req, cmd, args, raw, policy.merge);
        return;
      case 'unsupported':
        req.resolve(encodeError(`ERR command '${cmd.name.replace('|', ' ')}' is not supported by reborn: ${policy.reason}`));
        return;
    }
  }

  /** Sends a single-slot command to the slot's master. */
  private route(session: Session, req: ClientRequest, cmd: CommandInfo, args: Buffer[], raw: Buffer | null): void {
    if (!this.router.isReady) {
      req.resolve(NOT_READY);
      return;
    }
    if (blocksConnection(cmd, args)) {
      // Only reached by forms like XREAD BLOCK: a blocked request would stall every client
      // sharing the backend connection.
      req.resolve(encodeError(`ERR command '${cmd.name}' with BLOCK is not supported by reborn yet`));
      return;
    }
    let keys: number[];
    try {
      keys = extractKeyIndexes(cmd, args);
    } catch (err) {
      req.resolve(encodeError(`ERR ${(err as Error).message}`));
      return;
    }
    let slot: number;
    if (keys.length === 0) {
      // Keyless scripts (EVAL with numkeys 0) and the like run on the first served group.
      const first = this.router.firstServed();
      if (first === undefined) {
        req.resolve(encodeError('ERR no slot is served: run reborn-config slot init'));
        return;
      }
      slot = first.id;
    } else {
      slot = keySlot(args[keys[0]!]!);
      for (let i = 1; i < keys.length; i++) {
        if (keySlot(args[keys[i]!]!) !== slot) {
          req.resolve(CROSSSLOT);
          return;
        }
      }
    }
    const entry = this.router.slots[slot]!;
    if (entry.master === null) {
      req.resolve(encodeError(`ERR ${entry.unavailable ?? `slot ${slot} is not served`}`));
      return;
    }
    if (raw === null) req.payload = encodeCommand(args);
    entry.master.pick(session.id).send(req);
  }

  /**
   * MGET/MSET/DEL/UNLINK/EXISTS/TOUCH. Keys are grouped by the master that owns their slot;
   * when they all land on one master the command goes unchanged, otherwise each master gets
   * one command with its share of the keys and the replies are merged.
   */
  private split(
    session: Session,
    req: ClientRequest,
    cmd: CommandInfo,
    args: Buffer[],
    raw: Buffer | null,
    merge: 'mget' | 'mset' | 'sum',
  ): void {
    if (!this.router.isReady) {
      req.resolve(NOT_READY);
      return;
    }
    const step = merge === 'mset' ? 2 : 1;
    if ((args.length - 1) % step !== 0) {
      req.resolve(encodeError(`ERR wrong number of arguments for '${cmd.name}' command`));
      return;
    }
    const byPool = new Map<BackendPool, number[]>();
    for (let i = 1; i < args.length; i += step) {
      const entry = this.router.slots[keySlot(args[i]!)]!;
      if (entry.master === null) {
        req.resolve(encodeError(`ERR ${entry.unavailable ?? 'slot is not served'}`));
        return;
      }
      const list = byPool.get(entry.master);
      if (list === undefined) byPool.set(entry.master, [i]);
      else list.push(i);
    }
    if (byPool.size === 1) {
      if (raw === null) req.payload = encodeCommand(args);
      byPool.keys().next().value!.pick(session.id).send(req);
      return;
    }
    const name = args[0]!;
    const parts = [...byPool];
    let m: Merge;
    if (merge === 'mget') {
      const positions = parts.map(([, idx]) => idx.map((i) => i - 1));
      m = new MgetMerge(req, positions, args.length - 1);
    } else if (merge === 'mset') {
      m = new AllOkMerge(req, parts.length);
    } else {
      m = new SumMerge(req, parts.length);
    }
    parts.forEach(([pool, idx], p) => {
      const partArgs: Buffer[] = [name];
      for (const i of idx) {
        partArgs.push(args[i]!);
        if (step === 2) partArgs.push(args[i + 1]!);
      }
      pool.pick(session.id).send(m.part(p, encodeCommand(partArgs)));
    });
  }

  /** Sends the command to every master (SCRIPT LOAD/FLUSH/EXISTS) and merges the replies. */
  private fanout(
    session: Session,
    req: ClientRequest,
    cmd: CommandInfo,
    args: Buffer[],
    raw: Buffer | null,
    merge: 'sum' | 'first' | 'all-ok' | 'info' | 'concat',
  ): void {
    if (!this.router.isReady) {
      req.resolve(NOT_READY);
      return;
    }
    const masters = this.router.masters();
    if (masters.length === 0) {
      req.resolve(encodeError('ERR no groups are configured'));
      return;
    }
    const payload = raw ?? encodeCommand(args);
    let m: Merge;
    if (cmd.name === 'script|exists') m = new ArrayAndMerge(req, masters.length);
    else if (merge === 'sum') m = new SumMerge(req, masters.length);
    else if (merge === 'all-ok') m = new AllOkMerge(req, masters.length);
    else m = new FirstMerge(req, masters.length);
    masters.forEach((pool, p) => pool.pick(session.id).send(m.part(p, payload)));
  }
}
