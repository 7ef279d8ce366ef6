/**
 * The words of client-side caching: CLIENT TRACKING's arguments checked with Redis 7's rules
 * and error texts (networking.c, clientCommand), and the replies of CLIENT TRACKINGINFO.
 *
 * Invariant: pure. Nothing here changes a client's tracking state; tracking.ts applies a
 * request only once every check here passed, so a refused CLIENT TRACKING changes nothing
 * (as in Redis).
 */
import { encodeArrayOfEncoded, encodeBulk, encodeError, encodeInteger, encodeMapOf, encodeSet, type Protocol } from '@reborn/protocol';
import { prefixConflict } from './tracking-prefixes.js';

/** A client's tracking mode, as the checks and TRACKINGINFO read it. */
export interface TrackingMode {
  readonly redirect: number;
  readonly bcast: boolean;
  readonly optin: boolean;
  readonly optout: boolean;
  readonly noloop: boolean;
  /** CLIENT CACHING YES (OPTIN) or NO (OPTOUT) given for the next command. */
  readonly caching: boolean;
  readonly brokenRedirect: boolean;
  /** Its BCAST prefixes (latin1 → bytes). */
  readonly prefixes: ReadonlyMap<string, Buffer>;
}

/** CLIENT TRACKING ON|OFF with its options, parsed. */
export interface TrackingRequest {
  readonly on: boolean;
  /** 0: no REDIRECT. */
  readonly redirect: number;
  readonly bcast: boolean;
  readonly optin: boolean;
  readonly optout: boolean;
  readonly noloop: boolean;
  readonly prefixes: readonly Buffer[];
}

const SYNTAX = encodeError('ERR syntax error');
/** The bytes of one client's prefixes together: the memory a client's BCAST state may keep. */
export const MAX_PREFIX_BYTES = 1024 * 1024;

function word(arg: Buffer): string {
  return arg.length > 8 ? '' : arg.toString('latin1').toLowerCase();
}

/**
 * CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p …] [OPTIN] [OPTOUT] [NOLOOP]: the
 * options in Redis's order of checks (REDIRECT's target must exist now), or the error reply.
 * More than `maxPrefixes` PREFIX options stop the parse at once: the proxy's bound on what
 * one client may register (Redis has none, and checks overlaps in O(n²)).
 */
export function parseTracking(args: readonly Buffer[], clientExists: (id: number) => boolean, maxPrefixes: number): TrackingRequest | Buffer {
  let redirect = 0;
  let bcast = false;
  let optin = false;
  let optout = false;
  let noloop = false;
  const prefixes: Buffer[] = [];
  for (let j = 3; j < args.length; j++) {
    const moreArgs = j < args.length - 1;
    const opt = word(args[j]!);
    if (opt === 'redirect' && moreArgs) {
      j++;
      if (redirect !== 0) return encodeError('ERR A client can only redirect to a single other client');
      const text = args[j]!.toString('latin1');
      if (!/^(0|-?[1-9]\d{0,18})$/.test(text) || BigInt(text) > 0x7fffffffffffffffn || BigInt(text) < -0x8000000000000000n) {
        return encodeError('ERR value is not an integer or out of range');
      }
      const id = Number(text);
      if (!Number.isSafeInteger(id) || id <= 0 || !clientExists(id)) return encodeError('ERR The client ID you want redirect to does not exist');
      redirect = id;
    } else if (opt === 'bcast') {
      bcast = true;
    } else if (opt === 'optin') {
      optin = true;
    } else if (opt === 'optout') {
      optout = true;
    } else if (opt === 'noloop') {
      noloop = true;
    } else if (opt === 'prefix' && moreArgs) {
      j++;
      if (prefixes.length >= maxPrefixes) return tooManyPrefixes(maxPrefixes);
      prefixes.push(args[j]!);
    } else {
      return SYNTAX;
    }
  }
  const onOff = word(args[2]!);
  if (onOff !== 'on' && onOff !== 'off') return SYNTAX;
  return { on: onOff === 'on', redirect, bcast, optin, optout, noloop, prefixes };
}

function tooManyPrefixes(max: number): Buffer {
  return encodeError(`ERR too many tracking prefixes: this proxy allows at most ${max} per client (--tracking-max-prefixes)`);
}

/**
 * The checks of CLIENT TRACKING ON against the client's current mode (null: not tracking),
 * in Redis's order, then the proxy's bounds on prefixes (count, bytes); the error reply, or
 * null to go on.
 */
export function checkTrackingOn(current: TrackingMode | null, req: TrackingRequest, maxPrefixes: number): Buffer | null {
  if (!req.bcast && req.prefixes.length > 0) return encodeError('ERR PREFIX option requires BCAST mode to be enabled');
  if (current !== null && current.bcast !== req.bcast) {
    return encodeError("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.");
  }
  if (req.bcast && (req.optin || req.optout)) return encodeError('ERR OPTIN and OPTOUT are not compatible with BCAST');
  if (req.optin && req.optout) return encodeError("ERR You can't specify both OPTIN mode and OPTOUT mode");
  if (current !== null && ((req.optin && current.optout) || (req.optout && current.optin))) {
    return encodeError("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.");
  }
  if (!req.bcast) return null;
  const existing = current === null ? [] : [...current.prefixes.values()].sort(Buffer.compare);
  // With no PREFIX, BCAST means every key: the empty prefix (added even beside others, as Redis does).
  const added = req.prefixes.length === 0 ? (current?.prefixes.has('') ? 0 : 1) : req.prefixes.length;
  if (existing.length + added > maxPrefixes) return tooManyPrefixes(maxPrefixes);
  let bytes = 0;
  for (const p of existing) bytes += p.length;
  for (const p of req.prefixes) bytes += p.length;
  if (bytes > MAX_PREFIX_BYTES) return encodeError(`ERR tracking prefixes too long: at most ${MAX_PREFIX_BYTES} bytes of prefixes per client`);
  const conflict = prefixConflict(existing, req.prefixes);
  return conflict === null ? null : encodeError(conflict);
}

/** CLIENT CACHING YES|NO: sets the flag for the next command, or the error Redis gives. */
export function checkCaching(current: TrackingMode | null, arg: Buffer): Buffer | null {
  if (current === null) return encodeError('ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled');
  const opt = word(arg);
  if (opt === 'yes') return current.optin ? null : encodeError('ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.');
  if (opt === 'no') return current.optout ? null : encodeError('ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.');
  return SYNTAX;
}

/** CLIENT GETREDIR: the redirect id, 0 without one, -1 when not tracking. */
export function getRedir(current: TrackingMode | null): Buffer {
  return encodeInteger(current === null ? -1 : current.redirect);
}

/** CLIENT TRACKINGINFO: a map of flags (a set), redirect and prefixes, as Redis 7 builds it. */
export function trackingInfo(resp: Protocol, current: TrackingMode | null): Buffer {
  const flags: string[] = [current === null ? 'off' : 'on'];
  if (current !== null) {
    if (current.bcast) flags.push('bcast');
    if (current.optin) flags.push('optin');
    if (current.optin && current.caching) flags.push('caching-yes');
    if (current.optout) flags.push('optout');
    if (current.optout && current.caching) flags.push('caching-no');
    if (current.noloop) flags.push('noloop');
    if (current.brokenRedirect) flags.push('broken_redirect');
  }
  const prefixes = current === null ? [] : [...current.prefixes.values()].sort(Buffer.compare);
  return encodeMapOf(resp, [
    ['flags', encodeSet(resp, flags.map((f) => encodeBulk(f)))],
    ['redirect', encodeInteger(current === null ? -1 : current.redirect)],
    ['prefixes', encodeArrayOfEncoded(prefixes.map((p) => encodeBulk(p)))],
  ]);
}
