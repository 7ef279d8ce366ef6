/**
 * Flag parsing shared by the daemons (reborn-proxy, reborn-agent): one typed table of options
 * with env fallbacks and defaults — precedence flags > env > defaults — and every problem
 * collected into one OptionsError, so a bad start says everything that is wrong at once.
 */
import { parseArgs } from 'node:util';
import { HOST_PORT_RE } from './models.js';

export interface OptionDef {
  env: string;
  kind: 'string' | 'int' | 'bool' | 'list';
  default: string | number | boolean | null;
  help: string;
  /** The flag may be given more than once; its values add up (see OptionReader.list). */
  repeatable?: boolean;
}

export class OptionsError extends Error {
  readonly code = 'EOPTIONS';
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'OptionsError';
  }
}

export function optionsUsage(bin: string, defs: Record<string, OptionDef>): string {
  const lines = [`usage: ${bin} [options]`, ''];
  for (const [name, def] of Object.entries(defs)) {
    const dflt = def.default === null || def.default === false ? '' : ` (default ${String(def.default)})`;
    const many = def.repeatable ? ' (repeatable, or comma separated)' : '';
    lines.push(`  --${name.padEnd(24)} ${def.help}${many}${dflt} [env ${def.env}]`);
  }
  return lines.join('\n');
}

export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/** host:port to listen on or reach (HOST_PORT_RE), port 0..65535: 0 picks a free one. */
export function isHostPort(s: string): boolean {
  const m = HOST_PORT_RE.exec(s);
  return m !== null && Number(m[2]) <= 65535;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Largest integer option: the longest delay a Node timer takes (2^31-1 ms, about 24.8 days). */
export const MAX_INT_OPTION = 2_147_483_647;

/** Reads options by name from flags, then env, then defaults; records problems as it goes. */
export class OptionReader {
  readonly problems: string[] = [];
  private readonly values: Record<string, string | boolean | Array<string | boolean> | undefined>;

  constructor(
    argv: string[],
    private readonly env: NodeJS.ProcessEnv,
    private readonly defs: Record<string, OptionDef>,
  ) {
    const spec: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = { help: { type: 'boolean' } };
    for (const [name, def] of Object.entries(defs)) spec[name] = { type: def.kind === 'bool' ? 'boolean' : 'string', ...(def.repeatable ? { multiple: true } : {}) };
    try {
      ({ values: this.values } = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false }));
    } catch (err) {
      throw new OptionsError([(err as Error).message]);
    }
  }

  raw(name: string): string | boolean | null {
    const def = this.defs[name]!;
    const flag = this.values[name];
    // A repeatable flag given several times reads as one comma list.
    if (Array.isArray(flag)) return flag.join(',');
    if (flag !== undefined) return flag;
    const fromEnv = this.env[def.env];
    if (fromEnv !== undefined && fromEnv !== '') return def.kind === 'bool' ? this.envBool(name, def.env, fromEnv) : fromEnv;
    return def.default === null ? null : typeof def.default === 'number' ? String(def.default) : def.default;
  }

  /** A mistyped switch must not silently mean "off" (REBORN_PROXY_DURABLE=ture). */
  private envBool(name: string, env: string, value: string): boolean {
    if (/^(1|true|yes|on)$/i.test(value)) return true;
    if (!/^(0|false|no|off)$/i.test(value)) this.problems.push(`${env} (--${name}) must be one of 1/0, true/false, yes/no, on/off, got "${value}"`);
    return false;
  }

  str(name: string): string | null {
    const v = this.raw(name);
    return v === null ? null : String(v);
  }

  /** A comma list (flags given more than once add up; else env, else default); blanks dropped. */
  list(name: string): string[] {
    return (this.str(name) ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  }

  bool(name: string): boolean {
    return this.raw(name) === true;
  }

  /**
   * The default ceiling is what a Node timer can wait (2^31-1 ms): a larger timeout would be
   * clamped to 1 ms, silently. Counts and byte sizes fit under it too.
   */
  int(name: string, min: number, max = MAX_INT_OPTION): number {
    const v = this.str(name) ?? '';
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
      if (max === MAX_INT_OPTION && /^\d+$/.test(v) && n > max) {
        this.problems.push(`--${name} must be at most ${max} (the longest a timer can wait, in ms), got "${v}"`);
        return min;
      }
      const range = max === MAX_INT_OPTION ? `≥ ${min}` : `${min}..${max}`;
      this.problems.push(`--${name} must be an integer ${range}, got "${v}"`);
      return min;
    }
    return n;
  }

  hostPort(name: string): string {
    const v = this.str(name) ?? '';
    if (!isHostPort(v)) this.problems.push(`--${name} must be host:port (IPv6 as [addr]:port), got "${v}"`);
    return v;
  }

  /** `--etcd`, `--product` and `--log-level`: what every daemon takes. */
  common(): { etcd: string[]; product: string; logLevel: string } {
    const etcd = (this.str('etcd') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    if (etcd.length === 0) this.problems.push('--etcd needs at least one endpoint');
    for (const e of etcd) if (!/^https?:\/\/[^/]+$/.test(e)) this.problems.push(`--etcd endpoint must look like http://host:port, got "${e}"`);
    const product = this.str('product') ?? '';
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(product)) this.problems.push(`--product must match [A-Za-z0-9_-]{1,64}, got "${product}"`);
    const logLevel = this.str('log-level') ?? '';
    if (!LOG_LEVELS.includes(logLevel)) this.problems.push(`--log-level must be one of ${LOG_LEVELS.join(',')}, got "${logLevel}"`);
    return { etcd, product, logLevel };
  }

  /** `--redis-password` (REDIS_PASSWORD_OPTION): null when unset or empty. */
  redisPassword(): string | null {
    const v = this.str('redis-password');
    return v === null || v === '' ? null : v;
  }

  /** Throws every recorded problem at once. */
  done(): void {
    if (this.problems.length > 0) throw new OptionsError(this.problems);
  }
}
