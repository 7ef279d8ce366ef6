/**
 * reborn-config's side of the product-wide redis parameters (the whitelist and the record are
 * coordinator's redis-config.ts; docs/product-config.md): list, set and unset, shared by the
 * `redis-config` verbs and /api/redis-config, so both check and refuse with the same words.
 *
 * `set` is the same change the proxy's CONFIG SET makes (coordinator's setProductConfig):
 * validated on the first group's master — redis' refusal is the answer, nothing is stored —
 * then stored, then applied here to every server of every group at once (every proxy applies
 * it too when it sees the change, and keeps applying it to servers added or restarted later).
 * `unset` only stops enforcing: redis has no "default" to go back to, so servers keep the
 * value they have until they restart.
 */
import {
  ConflictError,
  NotFoundError,
  PRODUCT_CONFIG_NAMES,
  RedisConfigRefusedError,
  RedisConfigStore,
  checkConfigParam,
  checkConfigValue,
  enforceConfig,
  groupMaster,
  setProductConfig,
  type ServerConfigAccess,
  type Store,
} from '@reborn/coordinator';
import { ServerUnreachableError } from './errors.js';
import { connectRedis, type RedisConn } from './server-redis.js';

export interface RedisConfigView {
  /** The stored parameters (canonical name → value). */
  params: Record<string, string>;
  updatedAt: string | null;
  /** The whitelist: every parameter that may be set. */
  allowed: string[];
}

export interface RedisConfigSetResult {
  param: string;
  value: string;
  /** The master that accepted it before it was stored. */
  validatedOn: string;
  /** Servers that have the stored set now. */
  applied: string[];
  /** Servers that could not be given it now (the proxies keep trying). */
  failed: Array<{ addr: string; error: string }>;
}

/** CONFIG GET/SET over the admin client; an error reply is RedisConfigRefusedError, no answer ServerUnreachableError. */
function adminAccess(conn: RedisConn): ServerConfigAccess {
  const call = async <T>(addr: string, args: string[], then: (reply: unknown) => T): Promise<T> => {
    const c = await connectRedis(addr, conn);
    try {
      return then(await c.call('CONFIG', ...args));
    } catch (err) {
      if ((err as Error).name === 'ReplyError') throw new RedisConfigRefusedError(addr, (err as Error).message);
      throw new ServerUnreachableError(`server ${addr} did not answer CONFIG ${args[0]}: ${(err as Error).message}`, err);
    } finally {
      c.disconnect();
    }
  };
  return {
    get: (addr, names) =>
      call(addr, ['GET', ...names], (reply) => {
        const flat = Array.isArray(reply) ? reply.map(String) : [];
        const out = new Map<string, string>();
        for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i]!.toLowerCase(), flat[i + 1]!);
        return out;
      }),
    set: (addr, pairs) => call(addr, ['SET', ...pairs.flat()], () => undefined),
  };
}

export class RedisConfigAdmin {
  private readonly configs: RedisConfigStore;
  private readonly access: ServerConfigAccess;

  constructor(
    private readonly store: Store,
    conn: RedisConn,
  ) {
    this.configs = new RedisConfigStore(store);
    this.access = adminAccess(conn);
  }

  async list(): Promise<RedisConfigView> {
    const { record } = await this.configs.read();
    return { params: { ...record.params }, updatedAt: record.updatedAt, allowed: [...PRODUCT_CONFIG_NAMES] };
  }

  async set(param: string, value: unknown): Promise<RedisConfigSetResult> {
    const name = checkConfigParam(param);
    const v = checkConfigValue(name, value);
    const groups = await this.store.listGroups();
    const validateOn = groups.map((g) => groupMaster(g)?.addr).find((a) => a !== undefined);
    if (validateOn === undefined) throw new ConflictError('no group has a master to validate redis parameters on: add a server first');
    await setProductConfig(this.configs, this.access, validateOn, { [name]: v });
    // The newest stored set (another change may have landed meanwhile), to every server.
    const { record } = await this.configs.read();
    const servers = groups.flatMap((g) => g.servers.map((s) => s.addr));
    const outcomes = await Promise.all(
      servers.map(async (addr) => {
        try {
          const refused = await enforceConfig(this.access, addr, record.params);
          return { addr, error: refused.length === 0 ? null : refused.map((r) => `${r.param}: ${r.message}`).join('; ') };
        } catch (err) {
          return { addr, error: (err as Error).message };
        }
      }),
    );
    return {
      param: name,
      value: v,
      validatedOn: validateOn,
      applied: outcomes.filter((o) => o.error === null).map((o) => o.addr),
      failed: outcomes.flatMap((o) => (o.error === null ? [] : [{ addr: o.addr, error: o.error }])),
    };
  }

  /** Stops enforcing `param`; NotFoundError when it is not stored. */
  async unset(param: string): Promise<{ param: string }> {
    const name = checkConfigParam(param);
    const removed = await this.configs.unset([name]);
    if (removed.length === 0) throw new NotFoundError(`redis parameter ${name} is not set for product ${this.store.product}`);
    return { param: name };
  }
}
