/**
 * CONFIG GET and CONFIG SET through the proxy, for the product-wide parameters only (the
 * whitelist of coordinator's redis-config.ts; docs/product-config.md).
 *
 * CONFIG GET asks the first master, over the client's own backend connection, for the
 * whitelisted names its patterns cover, so the reply is redis' own, in the client's protocol
 * (a map in RESP3, a flat array in RESP2); patterns that cover nothing whitelisted answer an
 * empty one, exactly as redis does for a pattern that matches nothing. So `requirepass`,
 * `dir` and the like never leave the servers through the proxy.
 *
 * CONFIG SET is refused for anything off the whitelist, naming it; otherwise the client's
 * session waits (its later commands too, so a SET right behind it sees the new setting) until
 * the parameters are validated, stored and applied everywhere (product-config.ts).
 */
import { encodeCommand, encodeError, encodeMap } from '@reborn/protocol';
import { PRODUCT_CONFIG_NAMES, canonicalConfigParam, checkConfigValue, configGetArgs } from '@reborn/coordinator';
import type { ProductConfig } from './product-config.js';
import type { ClientRequest } from './request.js';
import type { Router } from './router.js';
import type { Session } from './session.js';

const NOT_READY = encodeError('ERR proxy not ready');
const WRONG_ARITY = encodeError("ERR wrong number of arguments for 'config|set' command");

/** What CONFIG needs of the proxy (LocalContext has it all). */
export interface ConfigCommandContext {
  readonly router: Router;
  readonly productConfig: ProductConfig;
  refusal(): Buffer | null;
}

/** `config|get` and `config|set` (arity already checked by the command table). */
export function answerConfig(ctx: ConfigCommandContext, session: Session, req: ClientRequest, name: 'config|get' | 'config|set', args: Buffer[]): void {
  const refused = ctx.router.isReady ? ctx.refusal() : NOT_READY;
  if (refused !== null) {
    req.resolve(refused);
    return;
  }
  if (name === 'config|get') configGet(ctx, session, req, args);
  else configSet(ctx, session, req, args);
}

function configGet(ctx: ConfigCommandContext, session: Session, req: ClientRequest, args: Buffer[]): void {
  const names = configGetArgs(args.slice(2).map((a) => a.toString('utf8')));
  const master = ctx.router.masters()[0];
  if (names.length === 0 || master === undefined) {
    req.resolve(encodeMap(session.resp, []));
    return;
  }
  req.payload = encodeCommand(['CONFIG', 'GET', ...names]);
  master.pick(session.id, session.resp).send(req);
}

function configSet(ctx: ConfigCommandContext, session: Session, req: ClientRequest, args: Buffer[]): void {
  if (args.length % 2 !== 0) {
    req.resolve(WRONG_ARITY);
    return;
  }
  const params: Record<string, string> = {};
  for (let i = 2; i < args.length; i += 2) {
    const given = args[i]!.toString('utf8');
    const canonical = canonicalConfigParam(given);
    if (canonical === null) {
      req.resolve(
        encodeError(
          `ERR CONFIG SET '${given.replace(/[^\x20-\x7e]/g, '?').slice(0, 128)}' is not available through reborn: only the product-wide parameters are (${PRODUCT_CONFIG_NAMES.join(', ')}, and their older names); set others on each server`,
        ),
      );
      return;
    }
    // Redis' own words for a parameter named twice (an alias and its name count as one).
    if (canonical in params) {
      req.resolve(encodeError(`ERR CONFIG SET failed (possibly related to argument '${given}') - duplicate parameter`));
      return;
    }
    try {
      params[canonical] = checkConfigValue(canonical, args[i + 1]!.toString('utf8'));
    } catch (err) {
      req.resolve(encodeError(`ERR ${(err as Error).message}`));
      return;
    }
  }
  session.gate();
  ctx.productConfig.set(params).then(
    (reply) => {
      req.resolve(reply);
      session.ungate();
    },
    (err: unknown) => {
      req.resolve(encodeError(`ERR CONFIG SET failed: ${(err as Error).message.replace(/[\r\n]+/g, ' ')}`));
      session.ungate();
    },
  );
}
