/**
 * The copy lease: how the migration runner's copy of small keys and the proxies' on-touch moves
 * of the same keys stay out of each other's way (docs/architecture.md, "Moving data").
 *
 * The runner moves a chunk of keys of a migrating slot by copying (DUMP on the source, RESTORE
 * on the target) and deleting the source copies afterwards, not by MIGRATE. A proxy that meets
 * one of those keys meanwhile must not move it itself: if it moved the key between the
 * runner's DUMP and RESTORE, and a client then deleted it on the target, the runner's RESTORE
 * would bring the deleted value back. So the runner's DUMP script marks each key it dumps, in
 * the same atomic step, in the hash COPYING_HASH on the source master: field = key, value =
 * `<deadline ms>:<token>` (deadline by the source's own clock, TIME). The proxies' on-touch
 * move (ON_TOUCH_MOVE_SCRIPT) runs on the source as one script: a key marked with a deadline
 * still ahead is answered TRYAGAIN (the proxy retries shortly), otherwise the keys are
 * MIGRATEd as before. The runner deletes the source copy and its mark together (one script)
 * once the target holds the copy, and never RESTOREs later than RESTORE_MARGIN_MS before the
 * deadline (its restore script checks the target's clock), so once a deadline passed, a
 * proxy's MIGRATE can no longer race a late RESTORE.
 *
 * Invariant: while a key is marked and its deadline is ahead, only the runner writes it (on
 * the target, by RESTORE without REPLACE); after the deadline, only proxies move it (MIGRATE,
 * atomic). Keys under INTERNAL_KEY_PREFIX are the product's own and are never moved.
 */

/** Every key the product itself keeps on a redis server starts with this. */
export const INTERNAL_KEY_PREFIX = '__reborn:';
const PREFIX_BYTES = Buffer.from(INTERNAL_KEY_PREFIX);

/** The hash of marked keys on a source master. */
export const COPYING_HASH = `${INTERNAL_KEY_PREFIX}copying`;

/**
 * Big keys a proxy met and would not MIGRATE whole (a hash on the source master: field = key):
 * the runner moves them first, in pieces, while the proxy retries.
 */
export const WANTED_HASH = `${INTERNAL_KEY_PREFIX}wanted`;

/**
 * A key whose MEMORY USAGE (SAMPLES 5) is at least this many bytes is big: one MIGRATE of it
 * would stall the source (measured: a 1 MB hash of 13k fields held the source 7–18 ms; a
 * 2-million-field hash 4.4–6.2 s). The runner copies such keys in pieces (big-key-move.ts),
 * and the proxies leave them to it.
 */
export const BIG_KEY_BYTES = 1024 * 1024;

/**
 * CLIENT SETNAME of the runner's connections to the servers it moves keys between: its pace
 * (config's source-pace.ts) tells them apart from the clients' (proxies') connections.
 */
export const RUNNER_CONNECTION_NAME = 'reborn-runner';

/** How long a mark holds (source clock). A dead runner's keys are free again after it. */
export const COPY_LEASE_MS = 10_000;

/** The runner restores only while the target's clock is this far before the deadline (clock skew, slow scripts). */
export const RESTORE_MARGIN_MS = 3_000;

export function isInternalKey(key: Buffer): boolean {
  return key.length >= PREFIX_BYTES.length && key.subarray(0, PREFIX_BYTES.length).equals(PREFIX_BYTES);
}

/**
 * The proxies' on-touch move, run on the source master: KEYS = the keys to move, ARGV[1] =
 * '1' to move big keys whole too (the last resort), then the MIGRATE arguments before `KEYS`
 * (host, port, "", db, timeout, [AUTH …]). Answers what MIGRATE answers (OK, NOKEY, its
 * error); TRYAGAIN while the runner copies one of the keys; BIGKEY for a big key, after
 * asking the runner for it (WANTED_HASH).
 */
export const ON_TOUCH_MOVE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  local v = redis.call('HGET', '${COPYING_HASH}', KEYS[i])
  if v and tonumber(string.match(v, '^%d+')) > now then
    return redis.error_reply('TRYAGAIN the migration runner is copying this key; try again')
  end
end
if ARGV[1] ~= '1' then
  for i = 1, #KEYS do
    local size = redis.call('MEMORY', 'USAGE', KEYS[i], 'SAMPLES', '5')
    if size and size >= ${BIG_KEY_BYTES} then
      redis.call('HSET', '${WANTED_HASH}', KEYS[i], now)
      return redis.error_reply('BIGKEY the migration runner moves this key in pieces; try again')
    end
  end
end
local args = {}
for i = 2, #ARGV do args[#args + 1] = ARGV[i] end
args[#args + 1] = 'KEYS'
for i = 1, #KEYS do args[#args + 1] = KEYS[i] end
return redis.pcall('MIGRATE', unpack(args))`;
