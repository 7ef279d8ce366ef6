/**
 * The proxy's own slowlog: requests whose time from parsing to reply passed
 * `--slowlog-slower-than` microseconds, as `SLOWLOG GET/LEN/RESET` on the proxy shows them —
 * the latency a client saw through the proxy (queueing, barrier holds, key moves, backend
 * time), which no backend slowlog can show. Same entry shape as Redis':
 * [id, unix time, duration µs, [args…], client addr, client name].
 *
 * Cheap on the hot path: one comparison per request; the command is re-parsed from its raw
 * bytes only when an entry is recorded.
 */
import {
  encodeArrayOfEncoded,
  encodeBulk,
  encodeError,
  encodeInteger,
  OK,
  RequestParser,
} from '@reborn/protocol';
import { Fifo } from './fifo.js';

const MAX_ARGS = 32;
const MAX_ARG_BYTES = 128;

interface Entry {
  readonly id: number;
  readonly time: number;
  readonly micros: number;
  readonly args: Buffer[];
  readonly client: string;
  readonly name: string;
}

export class SlowLog {
  private entries = new Fifo<Entry>(16);
  private nextId = 0;

  constructor(
    /** Threshold in microseconds; negative disables the log, 0 logs every request. */
    readonly slowerThanMicros: number,
    readonly maxLen: number,
  ) {}

  /** Called for every answered request: cheap unless it is slow. */
  consider(micros: number, payload: Buffer, commandName: string, client: string, name: Buffer | null): void {
    if (this.slowerThanMicros < 0 || micros < this.slowerThanMicros || this.maxLen === 0) return;
    let args: Buffer[] = [Buffer.from(commandName)];
    if (payload.length > 0) {
      try {
        // Only the arguments shown are needed: no limit of the parser may refuse the request.
        new RequestParser({ maxBulkLength: Number.MAX_SAFE_INTEGER, maxMultibulkLength: Number.MAX_SAFE_INTEGER }).feed(payload, (a) => {
          args = a;
          return false;
        });
      } catch {
        // Unparseable here (never seen): the entry shows the command name alone.
      }
    }
    const shown = args.slice(0, MAX_ARGS).map((a) =>
      a.length > MAX_ARG_BYTES ? Buffer.concat([a.subarray(0, MAX_ARG_BYTES), Buffer.from(`... (${a.length - MAX_ARG_BYTES} more bytes)`)]) : Buffer.from(a),
    );
    if (args.length > MAX_ARGS) shown[MAX_ARGS - 1] = Buffer.from(`... (${args.length - MAX_ARGS + 1} more arguments)`);
    this.entries.push({ id: this.nextId++, time: Math.floor(Date.now() / 1000), micros: Math.round(micros), args: shown, client, name: name?.toString('latin1') ?? '' });
    while (this.entries.length > this.maxLen) this.entries.shift();
  }

  /** SLOWLOG GET [count] | LEN | RESET (subcommand lower-cased, args after it). */
  command(sub: string, args: Buffer[]): Buffer {
    if (sub === 'len') return encodeInteger(this.entries.length);
    if (sub === 'reset') {
      this.entries = new Fifo<Entry>(16);
      return OK;
    }
    // Redis 7.0's replies, word for word.
    if (args.length > 1) return encodeError("ERR unknown subcommand or wrong number of arguments for 'get'. Try SLOWLOG HELP.");
    let count = 10;
    if (args.length > 0) {
      const s = args[0]!.toString('latin1');
      count = /^-?\d{1,19}$/.test(s) ? Number(s) : NaN;
      if (!Number.isSafeInteger(count) || count < -1) return encodeError('ERR count should be greater than or equal to -1');
      if (count === -1) count = this.entries.length;
    }
    const all = this.entries.drain();
    for (const e of all) this.entries.push(e);
    const newest = all.reverse().slice(0, count);
    return encodeArrayOfEncoded(
      newest.map((e) =>
        encodeArrayOfEncoded([
          encodeInteger(e.id),
          encodeInteger(e.time),
          encodeInteger(e.micros),
          encodeArrayOfEncoded(e.args.map((a) => encodeBulk(a))),
          encodeBulk(e.client),
          encodeBulk(e.name),
        ]),
      ),
    );
  }
}
