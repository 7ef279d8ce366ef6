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
  encodeInteger,
  keySlot,
  resolveCommand,
  checkArity,
  extractKeyIndexes,
  blocksConnection,
  MAY_WRITE,
  type CommandInfo,
  type FanoutMerge,
} from '@reborn/protocol';
import type { BackendPool } from './backend-pool.js';
import type { Forwarder } from './forward.js';
import type { Transactions } from './transactions.js';
import { answerLocally, type LocalContext } from './local-commands.js';
import { AllOkMerge, AnyOkMerge, ArrayAndMerge, FirstMerge, MgetMerge, MinMerge, SumMerge, type ClientRequest, type Merge } from './request.js';
import type { Router } from './router.js';
import type { Session } from './session.js';
import type { CommandStats } from './metrics.js';
import { ALLOWED_WHILE_SUBSCRIBED, PUBSUB_COMMANDS, UNSUBSCRIBE_COMMANDS, type PubSub } from './pubsub.js';
import type { StartupHold } from './startup-hold.js';

const CROSSSLOT = encodeError("CROSSSLOT Keys in request don't hash to the same slot");
const NOT_READY = encodeError('ERR proxy not ready');
const NOAUTH = encodeError('NOAUTH Authentication required.');
const EMPTY = Buffer.alloc(0);
const TRANSACTION_COMMANDS = new Set(['multi', 'exec', 'discard', 'watch', 'unwatch']);
const NO_KEYS: readonly Buffer[] = [];

function keysAt(args: Buffer[], indexes: number[]): Buffer[] {
  return indexes.map((i) => args[i]!);
}

/** Commands an unauthenticated client may still send, as in Redis (RESET carries its no-auth flag). */
const ALLOWED_BEFORE_AUTH = new Set(['auth', 'hello', 'quit', 'reset']);

function printable(arg: Uint8Array, max = 128): string {
  const s = Buffer.from(arg.subarray(0, max)).toString('latin1');
  return s.replace(/[^\x20-\x7e]/g, '?');
}

const RESET = Buffer.from('+RESET\r\n');
const WAIT_CANNOT_SEE = encodeError(
  'ERR WAIT cannot confirm the writes this connection made with a blocking command or under WATCH since its last WAIT (they ran on connections of their own); run the proxy with --durable for those',
);

export interface DispatcherOptions {
  router: Router;
  stats: CommandStats;
  local: LocalContext;
  /** Why data commands are refused right now (not registered yet, fenced), or null. */
  refusal: () => Buffer | null;
  /** Where start-up refusals wait for the proxy to serve (bounded) before being answered. */
  hold: StartupHold;
  /** The slot path (holds, key moves, delivery), shared with transactions. */
  forward: Forwarder;
  transactions: Transactions;
  pubsub: PubSub;
  /** WAIT's timeout is capped at this (and 0, "forever", means this): it holds a shared connection. */
  maxWaitTimeoutMs: number;
}

export class Dispatcher {
  private readonly statIndex = new Map<CommandInfo, number>();
  private readonly unknownStat: number;

  private readonly router: Router;
  private readonly stats: CommandStats;
  private readonly local: LocalContext;
  private readonly refusal: () => Buffer | null;
  private readonly hold: StartupHold;
  private readonly forward: Forwarder;
  private readonly transactions: Transactions;
  private readonly pubsub: PubSub;
  private readonly maxWaitTimeoutMs: number;

  constructor(opts: DispatcherOptions) {
    this.router = opts.router;
    this.stats = opts.stats;
    this.local = opts.local;
    this.refusal = opts.refusal;
    this.hold = opts.hold;
    this.forward = opts.forward;
    this.transactions = opts.transactions;
    this.pubsub = opts.pubsub;
    this.maxWaitTimeoutMs = opts.maxWaitTimeoutMs;
    this.unknownStat = this.stats.indexOf('unknown');
  }

  dispatch(session: Session, args: Buffer[], raw: Buffer | null): void {
    const now = performance.now();
    const cmd = resolveCommand(args);
    const req = session.enqueue(raw ?? EMPTY, cmd === undefined ? this.unknownStat : this.statOf(cmd), now);
    session.lastCommandAt = now;
    if (cmd !== undefined) session.lastCommand = cmd.name;
    // Scripts and functions are not flagged as writes (only running them tells), but durable
    // mode must not acknowledge a script's writes unconfirmed: count them as writes.
    if (cmd !== undefined) req.write = cmd.write || MAY_WRITE.has(cmd.name);
    // Behind a request that waits for a slot barrier or a key move (see Session.gate) the
    // client's later commands wait too, and are judged when they run: a MULTI or SUBSCRIBE
    // parked ahead of them decides whether they are queued, refused or answered differently.
    if (session.isGated) {
      // QUIT takes effect at once on the input: nothing sent after it runs (Redis).
      if (cmd?.name === 'quit') session.endAfterReplies();
      session.park(() => this.execute(session, req, cmd, args, raw));
    } else {
      this.execute(session, req, cmd, args, raw);
    }
  }

  private statOf(cmd: CommandInfo): number {
    let stat = this.statIndex.get(cmd);
    if (stat === undefined) {
      stat = this.stats.indexOf(cmd.name);
      this.statIndex.set(cmd, stat);
    }
    return stat;
  }

  private execute(session: Session, req: ClientRequest, cmd: CommandInfo | undefined, args: Buffer[], raw: Buffer | null): void {
    session.applyReplyMode(req);
    // Client-side caching: a read is recorded before it is sent, its reply already owed (tracking.ts).
    if (session.tracking !== null) session.tracking.beforeCommand(cmd, args);
    this.run(session, req, cmd, args, raw);
  }

  /**
   * A refusal because the proxy does not serve yet: held (startup-hold.ts), then judged
   * again from `run` (not `execute`: reply mode and tracking already saw this command).
   */
  private refuse(session: Session, req: ClientRequest, refusal: Buffer, cmd: CommandInfo, args: Buffer[], raw: Buffer | null): void {
    if (!this.hold.hold(session, req.startedAt, () => this.run(session, req, cmd, args, raw))) req.resolve(refusal);
  }

  private run(session: Session, req: ClientRequest, cmd: CommandInfo | undefined, args: Buffer[], raw: Buffer | null): void {
    if (cmd === undefined) {
      const rest = args.slice(1, 4).map((a) => `'${printable(a)}'`).join(' ');
      // Inside MULTI a rejected command dooms the transaction: EXEC answers EXECABORT (Redis).
      if (session.tx !== null) session.tx.failed = true;
      req.resolve(encodeError(`ERR unknown command '${printable(args[0]!)}', with args beginning with: ${rest}`));
      return;
    }
    if (!checkArity(cmd, args.length)) {
      if (session.tx !== null) session.tx.failed = true;
      req.resolve(encodeError(`ERR wrong number of arguments for '${cmd.name}' command`));
      return;
    }
    if (!session.authenticated && !ALLOWED_BEFORE_AUTH.has(cmd.name)) {
      req.resolve(NOAUTH);
      return;
    }
    // Runs at once, also inside MULTI (as in Redis).
    if (cmd.name === 'reset') {
      this.reset(session, req);
      return;
    }
    // A RESP3 client may send any command while subscribed (replies and pushes interleave).
    if (session.pubsub !== null && session.resp === 2 && !ALLOWED_WHILE_SUBSCRIBED.has(cmd.name)) {
      req.resolve(encodeError(`ERR Can't execute '${cmd.name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`));
      return;
    }
    if (session.tx !== null && this.transactions.queues(session, cmd.name)) {
      this.transactions.queue(session, req, cmd, args, raw);
      return;
    }
    const policy = cmd.policy;
    // Pub/sub and transaction commands are local ones with state of their own; checking the
    // kind first keeps their set lookups off the path of every routed command.
    if (policy.kind === 'local') {
      if (PUBSUB_COMMANDS.has(cmd.name)) {
        if (!UNSUBSCRIBE_COMMANDS.has(cmd.name) && (!this.router.isReady || this.refusal() !== null)) {
          this.refuse(session, req, this.refusal() ?? NOT_READY, cmd, args, raw);
          return;
        }
        this.pubsub.handle(session, req, cmd, args);
        return;
      }
      if (cmd.name === 'wait' || TRANSACTION_COMMANDS.has(cmd.name)) {
        if (!this.router.isReady || this.refusal() !== null) {
          this.refuse(session, req, this.refusal() ?? NOT_READY, cmd, args, raw);
          return;
        }
        if (cmd.name === 'wait') this.wait(session, req, args);
        else this.transactions.handle(session, req, cmd, args, raw);
        return;
      }
    }
    switch (policy.kind) {
      case 'route':
      case 'split':
      case 'fanout':
        const refusal = this.router.isReady ? this.refusal() : NOT_READY;
        if (refusal !== null) {
          this.refuse(session, req, refusal, cmd, args, raw);
          return;
        }
        this.routeByPolicy(session, req, cmd, args, raw);
        return;
      case 'local':
        answerLocally(this.local, session, req, cmd, args, raw);
        return;
      case 'unsupported':
        req.resolve(encodeError(`ERR command '${cmd.name.replace('|', ' ')}' is not supported by reborn: ${policy.reason}`));
        return;
    }
  }

  private routeByPolicy(session: Session, req: ClientRequest, cmd: CommandInfo, args: Buffer[], raw: Buffer | null): void {
    const policy = cmd.policy;
    if (policy.kind === 'split') this.split(session, req, cmd, args, raw, policy.merge);
    else if (policy.kind === 'route' && policy.channel === true) this.publish(session, req, args, raw);
    else if (policy.kind === 'fanout') this.fanout(session, req, cmd, args, raw, policy.merge);
    else this.route(session, req, cmd, args, raw);
  }

  /** Sends a single-slot command to the slot's owner. */
  private route(session: Session, req: ClientRequest, cmd: CommandInfo, args: Buffer[], raw: Buffer | null): void {
    const blocking = blocksConnection(cmd, args);
    let keys: number[];
    try {
      keys = extractKeyIndexes(cmd, args);
    } catch {
      // A numkeys that is not a count, or points past the arguments: redis refuses such a
      // command whatever server gets it, and each command words that error its own way
      // (ZMPOP, SINTERCARD, ZUNION and EVAL all differ). So any master answers it, exactly.
      keys = [];
    }
    if (raw === null) req.payload = encodeCommand(args);
    if (keys.length === 0) {
      // Keyless scripts (EVAL with numkeys 0) and the like run on the first served group.
      const first = this.router.firstServed();
      if (first === undefined) {
        req.resolve(encodeError('ERR no slot is served: run reborn-config slot init'));
        return;
      }
      this.forward.sendToSlot(session, req, first.id, NO_KEYS, blocking);
      return;
    }
    const slot = keySlot(args[keys[0]!]!);
    for (let i = 1; i < keys.length; i++) {
      if (keySlot(args[keys[i]!]!) !== slot) {
        req.resolve(CROSSSLOT);
        return;
      }
    }
    this.stats.slotOps[slot]!++;
    this.forward.sendToSlot(session, req, slot, keys.length === 1 ? [args[keys[0]!]!] : keys.map((k) => args[k]!), blocking);
  }

  /** RESET: no transaction, no WATCH, no subscription, no name, RESP2, not authenticated (with --auth). */
  private reset(session: Session, req: ClientRequest): void {
    this.transactions.reset(session);
    this.pubsub.sessionClosed(session);
    session.tracking?.disable();
    session.resetState();
    session.switchProtocol(req, 2);
    req.resolve(RESET);
  }

  /**
   * PUBLISH/SPUBLISH go to the master owning the channel's slot. The channel is not a key:
   * nothing is moved for it while the slot migrates, since every group's feed is subscribed
   * (pubsub.ts).
   */
  private publish(session: Session, req: ClientRequest, args: Buffer[], raw: Buffer | null): void {
    if (raw === null) req.payload = encodeCommand(args);
    const slot = keySlot(args[1]!);
    this.stats.slotOps[slot]!++;
    this.forward.sendToSlot(session, req, slot, NO_KEYS);
  }

  /**
   * MGET/MSET/DEL/UNLINK/EXISTS/TOUCH. When every key's slot is online, keys are grouped by
   * the master that owns them: all on one master → the command goes unchanged, otherwise each
   * master gets one command with its share of the keys and the replies are merged. When a
   * slot is being migrated, parts are cut per slot instead, so each goes through
   * sendToSlot's barrier and key-move handling.
   */
  private split(
    session: Session,
    req: ClientRequest,
    cmd: CommandInfo,
    args: Buffer[],
    raw: Buffer | null,
    merge: 'mget' | 'mset' | 'sum',
  ): void {
    const step = merge === 'mset' ? 2 : 1;
    if ((args.length - 1) % step !== 0) {
      req.resolve(encodeError(`ERR wrong number of arguments for '${cmd.name}' command`));
      return;
    }
    const slots = this.router.slots;
    // Part key: a BackendPool when the slot is online, else the slot number.
    const parts = new Map<BackendPool | number, number[]>();
    let firstSlot = -1;
    let oneSlot = true;
    for (let i = 1; i < args.length; i += step) {
      const slot = keySlot(args[i]!);
      this.stats.slotOps[slot]!++;
      if (firstSlot === -1) firstSlot = slot;
      else if (slot !== firstSlot) oneSlot = false;
      const entry = slots[slot]!;
      if (entry.master === null) {
        req.resolve(encodeError(`ERR ${entry.unavailable ?? 'slot is not served'}`));
        return;
      }
      // A group below its minInSync refuses the whole command, before any part is sent.
      const refusal = req.write ? entry.master.writePolicy?.refusal : null;
      if (refusal) {
        req.resolve(refusal);
        return;
      }
      if (entry.state === 'online' && req.write) (session.wroteTo ??= new Set()).add(entry.groupId);
      // A slot with a key under a big-key move goes through sendToSlot, which holds that key.
      const partKey = entry.state === 'online' && !this.forward.holdsKeysIn(slot) ? entry.master : slot;
      const list = parts.get(partKey);
      if (list === undefined) parts.set(partKey, [i]);
      else list.push(i);
    }
    if (raw === null) req.payload = encodeCommand(args);
    if (oneSlot) {
      this.forward.sendToSlot(session, req, firstSlot, keysAt(args, parts.values().next().value!));
      return;
    }
    const entries = [...parts];
    if (entries.length === 1 && typeof entries[0]![0] !== 'number') {
      (entries[0]![0] as BackendPool).pick(session.id, session.resp).send(req);
      return;
    }
    const name = args[0]!;
    let m: Merge;
    if (merge === 'mget') {
      m = new MgetMerge(req, entries.map(([, idx]) => idx.map((i) => i - 1)), args.length - 1);
    } else if (merge === 'mset') {
      m = new AllOkMerge(req, entries.length);
    } else {
      m = new SumMerge(req, entries.length);
    }
    entries.forEach(([target, idx], p) => {
      const partArgs: Buffer[] = [name];
      for (const i of idx) {
        partArgs.push(args[i]!);
        if (step === 2) partArgs.push(args[i + 1]!);
      }
      const part = m.part(p, encodeCommand(partArgs));
      if (typeof target === 'number') this.forward.sendToSlot(session, part, target, keysAt(args, idx));
      else target.pick(session.id, session.resp).send(part);
    });
  }

  /** Sends the command to every master (SCRIPT LOAD/FLUSH/EXISTS) and merges the replies. */
  private fanout(
    session: Session,
    req: ClientRequest,
    cmd: CommandInfo,
    args: Buffer[],
    raw: Buffer | null,
    merge: FanoutMerge,
  ): void {
    const masters = this.router.masters();
    if (masters.length === 0) {
      req.resolve(encodeError('ERR no groups are configured'));
      return;
    }
    const payload = raw ?? encodeCommand(args);
    if (req.write) {
      // A group below its minInSync refuses the whole command, before any master runs it.
      const refusal = masters.find((pool) => pool.writePolicy?.refusal)?.writePolicy?.refusal;
      if (refusal) {
        req.resolve(refusal);
        return;
      }
    }
    let m: Merge;
    if (cmd.name === 'script|exists') m = new ArrayAndMerge(req, masters.length);
    else if (merge === 'sum') m = new SumMerge(req, masters.length);
    else if (merge === 'all-ok') m = new AllOkMerge(req, masters.length);
    else if (merge === 'any-ok') m = new AnyOkMerge(req, masters.length);
    else m = new FirstMerge(req, masters.length);
    if (req.write) for (const gid of this.router.groupIds()) (session.wroteTo ??= new Set()).add(gid);
    masters.forEach((pool, p) => pool.pick(session.id, session.resp).send(m.part(p, payload)));
  }

  /**
   * WAIT numreplicas timeout: Redis counts the replicas that acknowledged everything *this
   * connection* wrote. The client's writes went over its own shared connection to each master
   * (pool.pick(session.id, session.resp)), so the same WAIT on those connections waits for at least its
   * writes; it is asked of every group the client wrote to (every group if none) and the
   * smallest count is the answer. The timeout is capped, since WAIT holds a connection other
   * clients share.
   */
  private wait(session: Session, req: ClientRequest, args: Buffer[]): void {
    // Redis checks the timeout first, with its own wording.
    const timeoutText = args[2]!.toString('latin1');
    const timeout = /^-?\d+$/.test(timeoutText) ? Number(timeoutText) : NaN;
    if (!Number.isSafeInteger(timeout)) {
      req.resolve(encodeError('ERR timeout is not an integer or out of range'));
      return;
    }
    if (timeout < 0) {
      req.resolve(encodeError('ERR timeout is negative'));
      return;
    }
    const replicasText = args[1]!.toString('latin1');
    if (!/^-?\d+$/.test(replicasText) || !Number.isSafeInteger(Number(replicasText))) {
      req.resolve(encodeError('ERR value is not an integer or out of range'));
      return;
    }
    if (session.wroteOutsideWaitsView) {
      // Said once, for the WAIT that should have covered such a write; later writes are
      // covered again.
      session.wroteOutsideWaitsView = false;
      req.resolve(WAIT_CANNOT_SEE);
      return;
    }
    const capped = timeout === 0 ? this.maxWaitTimeoutMs : Math.min(timeout, this.maxWaitTimeoutMs);
    const pools: BackendPool[] = [];
    for (const gid of session.wroteTo ?? this.router.groupIds()) {
      const pool = this.router.masterOf(gid);
      if (pool === undefined) {
        // The group is gone or has no master: nothing there can be confirmed.
        req.resolve(encodeInteger(0n));
        return;
      }
      if (!pools.includes(pool)) pools.push(pool);
    }
    if (pools.length === 0) {
      req.resolve(encodeError('ERR no groups are configured'));
      return;
    }
    const payload = encodeCommand(['WAIT', replicasText, String(capped)]);
    const m = new MinMerge(req, pools.length);
    // WAIT blocks the shared connection it runs on. Like a client blocked in redis, this
    // client's later commands wait for its answer: pipelined WAITs run one at a time, and the
    // other clients' requests on that connection get through between them.
    session.gate();
    let left = pools.length;
    pools.forEach((pool, p) => {
      const part = m.part(p, payload);
      pool.pick(session.id, session.resp).send({
        payload,
        resolve: (reply) => {
          part.resolve(reply);
          if (--left === 0) session.ungate();
        },
      });
    });
  }
}
