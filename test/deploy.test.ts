/**
 * deploy/ checked against the real programs (issue 6, "deploy/"): manifests and units drift
 * silently when a flag is renamed, so every reference is tied to something that exists.
 *
 * - Every YAML file (multi-document) and JSON file under deploy/ parses.
 * - Every Kubernetes document has apiVersion, kind and metadata.name, and the references
 *   between them hold: Service selectors and named ports, probe ports, ConfigMap refs,
 *   StatefulSet serviceName, $(VAR) in args, the kustomization's resource list.
 * - Every invocation of reborn-proxy / reborn-agent / reborn-config — container command+args,
 *   systemd Exec*= lines (also the `#   ExecStart=` examples in comments), Dockerfile
 *   CMD/ENTRYPOINT, shell lines in Markdown code blocks and command examples in comments
 *   (`#` followed by two or more spaces) — uses only flags listed by that binary's real
 *   `--help`; reborn-config also only verbs it lists, and only the flags of that verb or the
 *   global ones.
 * - Every REBORN_* variable named anywhere under deploy/ appears in some binary's `--help`.
 * - Every metric in the Grafana dashboard and the Prometheus files is registered in
 *   packages/* /src (or is a prom-client default metric under a prefix the source registers),
 *   and every label those queries group or match by exists.
 *
 * Needs the binaries built (`npx tsc -b`; `npm test` does it).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import client from 'prom-client';
import { parseAllDocuments } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const DEPLOY = join(REPO, 'deploy');

type Bin = 'reborn-proxy' | 'reborn-agent' | 'reborn-config';
const BINS: Record<Bin, string> = {
  'reborn-proxy': 'packages/proxy/bin/reborn-proxy.js',
  'reborn-agent': 'packages/agent/bin/reborn-agent.js',
  'reborn-config': 'packages/config/bin/reborn-config.js',
};

/**
 * Variables a binary reads but its --help does not list yet. Each must still be read by the
 * named source file (checked below), so a typo fails all the same.
 */
const READ_BUT_NOT_IN_HELP: Record<string, string> = {};

/** Labels Prometheus adds itself or the histogram format defines. */
const PROMETHEUS_LABELS = new Set(['instance', 'job', 'le', '__name__']);

// ---------------------------------------------------------------------------------------------
// Files

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

const FILES = existsSync(DEPLOY) ? walk(DEPLOY) : [];
const rel = (p: string): string => relative(REPO, p);
const read = (p: string): string => readFileSync(p, 'utf8');
const isYaml = (p: string): boolean => /\.ya?ml$/.test(p);
const YAML_FILES = FILES.filter(isYaml);
const JSON_FILES = FILES.filter((p) => p.endsWith('.json'));
const K8S_DIR = join(DEPLOY, 'kubernetes');
const K8S_FILES = YAML_FILES.filter((p) => p.startsWith(K8S_DIR + '/'));
const UNIT_FILES = FILES.filter((p) => /\.(service|socket|timer)$/.test(p));

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');

function yamlDocs(file: string): unknown[] {
  return parseAllDocuments(read(file))
    .map((d) => d.toJS() as unknown)
    .filter((d) => d !== null && d !== undefined);
}

// ---------------------------------------------------------------------------------------------
// The binaries' real --help

interface Help {
  text: string;
  flags: Set<string>;
  /** reborn-config: flags that take a value (`--etcd <url>`). */
  valueFlags: Set<string>;
  /** reborn-config: verb phrase → the flags its help lines name. */
  verbs: Map<string, Set<string>>;
  /** reborn-config: the global options. */
  globalFlags: Set<string>;
}

function helpOf(bin: Bin): Help {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REBORN_')) env[k] = v;
  const text = execFileSync(process.execPath, [join(REPO, BINS[bin]), '--help'], { cwd: REPO, env, encoding: 'utf8', timeout: 30_000 });
  const flags = new Set([...text.matchAll(/--[a-z0-9][a-z0-9-]*/g)].map((m) => m[0]));
  flags.add('--help'); // how this text was obtained
  const valueFlags = new Set([...text.matchAll(/(--[a-z0-9][a-z0-9-]*) <[^>]+>/g)].map((m) => m[1]!));
  const verbs = new Map<string, Set<string>>();
  const globalFlags = new Set<string>(['--help']);
  let section = '';
  let current: Set<string> | null = null;
  for (const line of text.split('\n')) {
    if (/^\S.*:$/.test(line)) {
      section = line.slice(0, -1);
      current = null;
      continue;
    }
    const lineFlags = [...line.matchAll(/--[a-z0-9][a-z0-9-]*/g)].map((m) => m[0]);
    if (section === 'verbs') {
      const m = /^ {2}(\S.*)$/.exec(line);
      if (m) {
        const words: string[] = [];
        for (const w of m[1]!.split(/\s+/)) {
          if (!/^[a-z][a-z|]*$/.test(w)) break;
          words.push(w);
        }
        current = new Set(lineFlags);
        verbs.set(words.join(' '), current);
      } else if (current && line.trim() !== '') {
        for (const f of lineFlags) current.add(f);
      }
    } else if (section === 'global options') {
      for (const f of lineFlags) globalFlags.add(f);
    }
  }
  return { text, flags, valueFlags, verbs, globalFlags };
}

// ---------------------------------------------------------------------------------------------
// Invocations of the binaries

interface Invocation {
  file: string;
  where: string;
  bin: Bin;
  args: string[];
}

function binOf(token: string): Bin | null {
  const m = /(?:^|\/)(reborn-(?:proxy|agent|config))(?:\.js)?$/.exec(token);
  return m ? (m[1] as Bin) : null;
}

/** Splits a shell-ish line into words; quotes group, backslash-newlines were joined before. */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (const m of line.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

const PREFIX_WORDS = new Set(['sudo', 'exec', 'env', 'npx', 'node', 'time', 'nohup']);

/** Invocations in one shell line: the binary at a command position of a segment. */
function shellInvocations(file: string, where: string, line: string): Invocation[] {
  const out: Invocation[] = [];
  const code = line.replace(/(^|\s)#.*$/, '');
  for (const segment of code.split(/&&|\|\||[;|]|\$\(|`/)) {
    const ws = words(segment);
    for (let i = 0; i < ws.length; i++) {
      const bin = binOf(ws[i]!);
      if (!bin) continue;
      const before = ws.slice(0, i);
      const atStart = before.every((w) => PREFIX_WORDS.has(w) || /^[A-Z_][A-Z0-9_]*=/.test(w) || w.startsWith('/'));
      const afterDashDash = before[before.length - 1] === '--';
      const afterImage = /(^|\/)reborn(:[\w.-]+)?$/.test(before[before.length - 1] ?? '');
      if (atStart || afterDashDash || afterImage) out.push({ file, where, bin, args: ws.slice(i + 1).map((w) => w.replace(/\)$/, '')) });
      break;
    }
  }
  return out;
}

/** `#` followed by two or more spaces: a command example inside a comment. */
function commentExamples(file: string): Invocation[] {
  const out: Invocation[] = [];
  read(file)
    .split('\n')
    .forEach((line, i) => {
      const m = /^\s*#\s{2,}(.*)$/.exec(line);
      if (!m) return;
      const exec = /^Exec\w*=[-@:+!|]*(.+)$/.exec(m[1]!.trim());
      if (exec) {
        const ws = words(exec[1]!);
        const at = ws.findIndex((w) => binOf(w) !== null);
        if (at >= 0) out.push({ file, where: `line ${i + 1}`, bin: binOf(ws[at]!)!, args: ws.slice(at + 1) });
        return;
      }
      out.push(...shellInvocations(file, `line ${i + 1}`, m[1]!));
    });
  return out;
}

function unitInvocations(file: string): Invocation[] {
  const out: Invocation[] = [];
  const lines = read(file).replace(/\\\n/g, ' ').split('\n');
  lines.forEach((line, i) => {
    const m = /^\s*Exec\w*=[-@:+!|]*(.*)$/.exec(line);
    if (!m || m[1]!.trim() === '') return;
    const ws = words(m[1]!);
    const at = ws.findIndex((w) => binOf(w) !== null);
    if (at >= 0) out.push({ file, where: `line ${i + 1}`, bin: binOf(ws[at]!)!, args: ws.slice(at + 1) });
  });
  return out;
}

function markdownInvocations(file: string): Invocation[] {
  const out: Invocation[] = [];
  let inCode = false;
  const lines = read(file).replace(/\\\n/g, ' ').split('\n');
  lines.forEach((line, i) => {
    if (/^\s*```/.test(line)) {
      inCode = !inCode;
      return;
    }
    if (inCode) out.push(...shellInvocations(file, `line ${i + 1}`, line));
  });
  return out;
}

function dockerfileInvocations(file: string): Invocation[] {
  const out: Invocation[] = [];
  const text = read(file);
  const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(text);
  const entryArgs = entry ? (JSON.parse(entry[1]!) as string[]) : [];
  for (const m of text.matchAll(/^CMD\s+(\[.*\])\s*$/gm)) {
    const argv = [...entryArgs, ...(JSON.parse(m[1]!) as string[])];
    const at = argv.findIndex((w) => binOf(w) !== null);
    if (at >= 0) out.push({ file, where: 'CMD', bin: binOf(argv[at]!)!, args: argv.slice(at + 1) });
  }
  return out;
}

interface Container {
  file: string;
  workload: string;
  spec: Obj;
  podLabels: Obj;
}

/** Every container of every pod template (or pod) in the Kubernetes files. */
function containers(): Container[] {
  const out: Container[] = [];
  for (const file of K8S_FILES) {
    for (const doc of yamlDocs(file)) {
      const d = obj(doc);
      const name = `${str(d['kind'])}/${str(obj(d['metadata'])['name'])}`;
      const visit = (node: unknown, labels: Obj): void => {
        if (Array.isArray(node)) return node.forEach((n) => visit(n, labels));
        if (!isObj(node)) return;
        const here = isObj(node['metadata']) && isObj(node['spec']) ? obj(obj(node['metadata'])['labels']) : labels;
        for (const key of ['containers', 'initContainers']) {
          for (const c of arr(node[key])) out.push({ file, workload: name, spec: obj(c), podLabels: here });
        }
        for (const [k, v] of Object.entries(node)) if (k !== 'containers' && k !== 'initContainers') visit(v, here);
      };
      visit(d, {});
    }
  }
  return out;
}

function k8sInvocations(): Invocation[] {
  const out: Invocation[] = [];
  for (const c of containers()) {
    const argv = [...arr(c.spec['command']), ...arr(c.spec['args'])].map(str);
    const at = argv.findIndex((w) => binOf(w) !== null);
    if (at >= 0) out.push({ file: c.file, where: `${c.workload} container ${str(c.spec['name'])}`, bin: binOf(argv[at]!)!, args: argv.slice(at + 1) });
  }
  return out;
}

function invocations(): Invocation[] {
  const out: Invocation[] = [...k8sInvocations()];
  for (const f of UNIT_FILES) out.push(...unitInvocations(f));
  for (const f of FILES.filter((p) => p.endsWith('.md'))) out.push(...markdownInvocations(f));
  for (const f of FILES.filter((p) => basename(p) === 'Dockerfile')) out.push(...dockerfileInvocations(f));
  for (const f of FILES.filter((p) => isYaml(p) || UNIT_FILES.includes(p) || p.endsWith('.env') || basename(p) === 'Dockerfile')) {
    out.push(...commentExamples(f));
  }
  return out;
}

/** Problems with one invocation, against the binary's help; [] when it is fine. */
function checkInvocation(inv: Invocation, help: Help): string[] {
  const problems: string[] = [];
  const at = `${rel(inv.file)} ${inv.where}: ${inv.bin} ${inv.args.join(' ')}`;
  const positionals: string[] = [];
  const used: string[] = [];
  for (let i = 0; i < inv.args.length; i++) {
    const a = inv.args[i]!;
    if (a.startsWith('--') && a.length > 2) {
      const flag = a.split('=')[0]!;
      used.push(flag);
      if (!help.flags.has(flag)) problems.push(`${at}: ${flag} is not an option of ${inv.bin} (see ${inv.bin} --help)`);
      if (help.valueFlags.has(flag) && !a.includes('=')) i++;
    } else if (!a.startsWith('-')) {
      positionals.push(a);
    }
  }
  if (inv.bin === 'reborn-config' && !used.includes('--help')) {
    const phrase = positionals.join(' ');
    const verb = [...help.verbs.keys()]
      .filter((v) => v !== '' && (phrase === v || phrase.startsWith(v + ' ')))
      .sort((a, b) => b.length - a.length)[0];
    if (verb === undefined) {
      problems.push(`${at}: no reborn-config verb "${positionals.slice(0, 2).join(' ')}" (see reborn-config --help)`);
    } else {
      for (const f of used) {
        if (help.flags.has(f) && !help.globalFlags.has(f) && !help.verbs.get(verb)!.has(f)) {
          problems.push(`${at}: ${f} is not an option of "reborn-config ${verb}"`);
        }
      }
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Metrics

const SOURCE = readdirSync(join(REPO, 'packages'))
  .flatMap((pkg) => {
    const src = join(REPO, 'packages', pkg, 'src');
    return existsSync(src) ? walk(src) : [];
  })
  .filter((p) => p.endsWith('.ts') && !p.endsWith('.test.ts') && !p.endsWith('.d.ts'))
  .map((p) => ({ path: p, text: read(p) }));

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function inSource(name: string): boolean {
  const re = new RegExp(`(?<![A-Za-z0-9_])${escapeRe(name)}(?![A-Za-z0-9_])`);
  return SOURCE.some((s) => re.test(s.text));
}

/** prom-client's default metrics under every prefix the source passes to collectDefaultMetrics. */
async function defaultMetricNames(): Promise<Set<string>> {
  const names = new Set<string>();
  const prefixes = new Set<string>();
  for (const s of SOURCE) {
    for (const m of s.text.matchAll(/collectDefaultMetrics\(\{[^}]*prefix:\s*['"]([a-z0-9_]+)['"]/g)) prefixes.add(m[1]!);
  }
  for (const prefix of prefixes) {
    const registry = new client.Registry();
    client.collectDefaultMetrics({ register: registry, prefix });
    for (const m of await registry.getMetricsAsJSON()) names.add(m.name);
    registry.clear();
  }
  return names;
}

/** Label names the source gives its metrics: labelNames, default labels, hand-written series. */
function sourceLabels(): Set<string> {
  const out = new Set<string>();
  for (const s of SOURCE) {
    if (!/prom-client|reborn_[a-z]+_/.test(s.text)) continue;
    for (const m of s.text.matchAll(/labelNames:\s*\[([^\]]*)\]/g)) for (const l of m[1]!.matchAll(/['"]([a-zA-Z_]\w*)['"]/g)) out.add(l[1]!);
    for (const m of s.text.matchAll(/setDefaultLabels\(([^)]*)\)/g)) for (const l of m[1]!.matchAll(/([a-zA-Z_]\w*)\s*:/g)) out.add(l[1]!);
    for (const m of s.text.matchAll(/reborn_[a-z0-9_]+\{([^}]*)\}/g)) for (const l of m[1]!.matchAll(/([a-zA-Z_]\w*)="/g)) out.add(l[1]!);
  }
  return out;
}

const MONITORING_FILES = FILES.filter((p) => p.startsWith(join(DEPLOY, 'grafana') + '/') || p.startsWith(join(DEPLOY, 'prometheus') + '/'));

/** Strings under the given keys anywhere in a parsed document. */
function stringsUnder(node: unknown, keys: ReadonlySet<string>, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => stringsUnder(n, keys, out));
  else if (isObj(node)) {
    for (const [k, v] of Object.entries(node)) {
      if (keys.has(k) && typeof v === 'string') out.push(v);
      else stringsUnder(v, keys, out);
    }
  }
  return out;
}

function parsedMonitoring(file: string): unknown[] {
  return file.endsWith('.json') ? [JSON.parse(read(file)) as unknown] : yamlDocs(file);
}

/** Labels that PromQL in `expr` groups, joins or matches by. */
function promqlLabels(expr: string): string[] {
  const out: string[] = [];
  for (const m of expr.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    for (const l of m[1]!.split(',')) if (l.trim() !== '') out.push(l.trim());
  }
  for (const m of expr.matchAll(/\{([^{}]*)\}/g)) for (const l of m[1]!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*"/g)) out.push(l[1]!);
  return out;
}

// ---------------------------------------------------------------------------------------------

describe('deploy/', () => {
  const help = {} as Record<Bin, Help>;

  beforeAll(() => {
    for (const bin of Object.keys(BINS) as Bin[]) {
      if (!existsSync(join(REPO, dirname(BINS[bin]), '../dist'))) throw new Error(`${bin} is not built: run npx tsc -b`);
      help[bin] = helpOf(bin);
    }
  });

  it('has the files the issue asks for', () => {
    const have = new Set(FILES.map(rel));
    for (const f of [
      'deploy/README.md',
      'deploy/systemd/reborn-proxy@.service',
      'deploy/systemd/reborn-agent.service',
      'deploy/systemd/reborn-dashboard.service',
      'deploy/kubernetes/README.md',
      'deploy/prometheus/scrape.yml',
      'deploy/grafana/reborn-dashboard.json',
    ]) {
      expect(have, f).toContain(f);
    }
  });

  it.each(YAML_FILES.map((f) => [rel(f), f]))('%s parses as YAML', (_, file) => {
    const docs = parseAllDocuments(read(file));
    for (const d of docs) expect(d.errors.map((e) => e.message), rel(file)).toEqual([]);
    expect(docs.length).toBeGreaterThan(0);
  });

  it.each(JSON_FILES.map((f) => [rel(f), f]))('%s parses as JSON', (_, file) => {
    expect(() => JSON.parse(read(file))).not.toThrow();
  });

  describe('kubernetes', () => {
    const all = K8S_FILES.flatMap((file) => yamlDocs(file).map((doc) => ({ file, doc: obj(doc) })));
    const name = (d: Obj): string => str(obj(d['metadata'])['name']);
    const ofKind = (kind: string): Obj[] => all.filter((x) => x.doc['kind'] === kind).map((x) => x.doc);

    it('every document has apiVersion, kind and metadata.name, and no namespace', () => {
      expect(all.length).toBeGreaterThan(0);
      for (const { file, doc } of all) {
        const at = `${rel(file)} ${str(doc['kind'])}/${name(doc)}`;
        expect(str(doc['apiVersion']), at).not.toBe('');
        expect(str(doc['kind']), at).not.toBe('');
        expect(name(doc), at).not.toBe('');
        expect(obj(doc['metadata'])['namespace'], `${at}: manifests are namespace-less`).toBeUndefined();
      }
    });

    it('kustomization.yaml lists every manifest, and only existing ones', () => {
      const k = ofKind('Kustomization')[0];
      expect(k, 'kustomization.yaml').toBeDefined();
      const listed = arr(k!['resources']).map(str).sort();
      const files = K8S_FILES.map((f) => basename(f)).filter((f) => f !== 'kustomization.yaml').sort();
      expect(listed).toEqual(files);
    });

    it('workload selectors match their pod templates; StatefulSets name a headless Service', () => {
      const services = new Map(ofKind('Service').map((s) => [name(s), s]));
      for (const w of [...ofKind('Deployment'), ...ofKind('StatefulSet')]) {
        const spec = obj(w['spec']);
        const match = obj(obj(spec['selector'])['matchLabels']);
        const labels = obj(obj(obj(spec['template'])['metadata'])['labels']);
        for (const [k, v] of Object.entries(match)) expect(labels[k], `${name(w)}: selector ${k}`).toBe(v);
        if (w['kind'] === 'StatefulSet') {
          const svc = services.get(str(spec['serviceName']));
          expect(svc, `${name(w)}: serviceName ${str(spec['serviceName'])}`).toBeDefined();
          expect(obj(svc!['spec'])['clusterIP'], `${name(w)}: governing Service must be headless`).toBe('None');
        }
      }
      for (const pdb of ofKind('PodDisruptionBudget')) {
        const match = obj(obj(obj(pdb['spec'])['selector'])['matchLabels']);
        const hit = containers().some((c) => Object.entries(match).every(([k, v]) => c.podLabels[k] === v));
        expect(hit, `PodDisruptionBudget ${name(pdb)} selects no pods`).toBe(true);
      }
    });

    it('Services select pods that have the ports they target', () => {
      for (const svc of ofKind('Service')) {
        const spec = obj(svc['spec']);
        const selector = obj(spec['selector']);
        const pods = containers().filter((c) => Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => c.podLabels[k] === v));
        expect(pods.length, `Service ${name(svc)} selects no pods`).toBeGreaterThan(0);
        const portNames = new Set(pods.flatMap((c) => arr(c.spec['ports']).map((p) => str(obj(p)['name']))));
        const portNumbers = new Set(pods.flatMap((c) => arr(c.spec['ports']).map((p) => str(obj(p)['containerPort']))));
        for (const p of arr(spec['ports']).map(obj)) {
          const target = str(p['targetPort'] ?? p['port']);
          const ok = /^\d+$/.test(target) ? portNumbers.has(target) : portNames.has(target);
          expect(ok, `Service ${name(svc)}: targetPort ${target} is no port of its pods`).toBe(true);
        }
      }
    });

    it('containers: probe ports exist, ConfigMaps exist, $(VAR) in command/args is defined', () => {
      const configMaps = new Set(ofKind('ConfigMap').map(name));
      for (const c of containers()) {
        const at = `${c.workload} container ${str(c.spec['name'])}`;
        const ports = arr(c.spec['ports']).map(obj);
        const names = new Set(ports.map((p) => str(p['name'])));
        const numbers = new Set(ports.map((p) => str(p['containerPort'])));
        for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
          const pr = obj(c.spec[probe]);
          const port = str(obj(pr['httpGet'])['port'] ?? obj(pr['tcpSocket'])['port']);
          if (port !== '') expect(/^\d+$/.test(port) ? numbers.has(port) : names.has(port), `${at}: ${probe} port ${port}`).toBe(true);
        }
        for (const ef of arr(c.spec['envFrom']).map(obj)) {
          const ref = str(obj(ef['configMapRef'])['name']);
          if (ref !== '') expect(configMaps.has(ref), `${at}: ConfigMap ${ref}`).toBe(true);
        }
        const envNames = new Set(arr(c.spec['env']).map((e) => str(obj(e)['name'])));
        for (const a of [...arr(c.spec['command']), ...arr(c.spec['args'])].map(str)) {
          for (const m of a.matchAll(/\$\(([A-Za-z_]\w*)\)/g)) expect(envNames.has(m[1]!), `${at}: $(${m[1]}) is not in env:, Kubernetes would pass it literally`).toBe(true);
        }
      }
    });

    it('runs each binary in some container, from the reborn image', () => {
      const invs = k8sInvocations();
      expect(new Set(invs.map((i) => i.bin))).toEqual(new Set(Object.keys(BINS)));
      expect(invs.some((i) => i.bin === 'reborn-agent' && i.args.includes('--ha'))).toBe(true);
      for (const c of containers()) {
        const argv = [...arr(c.spec['command']), ...arr(c.spec['args'])].map(str);
        if (argv.some((w) => binOf(w) !== null)) expect(str(c.spec['image']), c.workload).toMatch(/^reborn(:|$)/);
      }
    });
  });

  describe('systemd', () => {
    it.each(UNIT_FILES.map((f) => [rel(f), f]))('%s has [Unit], [Service], [Install] and runs a reborn binary', (_, file) => {
      const text = read(file);
      for (const s of ['[Unit]', '[Service]', '[Install]']) expect(text, rel(file)).toContain(s);
      expect(unitInvocations(file).length, `${rel(file)}: ExecStart of a reborn binary`).toBe(1);
    });

    it('every EnvironmentFile has an example next to the units', () => {
      const examples = FILES.filter((p) => p.endsWith('.env')).map((p) => basename(p));
      for (const file of UNIT_FILES) {
        for (const m of read(file).matchAll(/^EnvironmentFile=-?(\S+)$/gm)) {
          const pattern = new RegExp('^' + escapeRe(basename(m[1]!)).replace(/%i/g, '[^/]+') + '$');
          expect(examples.some((e) => pattern.test(e)), `${rel(file)}: example for ${m[1]}`).toBe(true);
        }
      }
    });

    it('example environment files are KEY=value lines', () => {
      for (const file of FILES.filter((p) => p.endsWith('.env'))) {
        read(file)
          .split('\n')
          .forEach((line, i) => {
            if (line.trim() === '' || line.trimStart().startsWith('#')) return;
            expect(line, `${rel(file)} line ${i + 1}`).toMatch(/^[A-Z_][A-Z0-9_]*=\S*$/);
          });
      }
    });

    it('the agent runs with --ha, the dashboard with the dashboard verb', () => {
      const invs = UNIT_FILES.flatMap(unitInvocations);
      expect(invs.find((i) => i.bin === 'reborn-agent')?.args).toContain('--ha');
      expect(invs.find((i) => i.bin === 'reborn-config')?.args[0]).toBe('dashboard');
      expect(invs.some((i) => i.bin === 'reborn-proxy')).toBe(true);
    });
  });

  it('every flag and verb used exists in the binaries --help', () => {
    const invs = invocations();
    // The scan must see the units, the containers and the guides' commands.
    expect(invs.filter((i) => UNIT_FILES.includes(i.file)).length).toBeGreaterThanOrEqual(3);
    expect(invs.filter((i) => K8S_FILES.includes(i.file)).length).toBeGreaterThanOrEqual(3);
    expect(invs.filter((i) => i.file.endsWith('.md')).length).toBeGreaterThan(0);
    const problems = invs.flatMap((inv) => checkInvocation(inv, help[inv.bin]));
    expect(problems).toEqual([]);
  });

  it('every REBORN_* variable is one a binary reads', () => {
    const helpText = Object.values(help)
      .map((h) => h.text)
      .join('\n');
    const problems: string[] = [];
    let seen = 0;
    for (const file of FILES) {
      for (const m of read(file).matchAll(/\bREBORN_[A-Z0-9_]*[A-Z0-9]\b/g)) {
        seen++;
        const v = m[0];
        if (new RegExp(`\\b${v}\\b`).test(helpText)) continue;
        const src = READ_BUT_NOT_IN_HELP[v];
        if (src !== undefined && existsSync(join(REPO, src)) && read(join(REPO, src)).includes(`'${v}'`)) continue;
        problems.push(`${rel(file)}: ${v} is in no binary's --help`);
      }
    }
    expect(seen).toBeGreaterThan(0);
    expect([...new Set(problems)]).toEqual([]);
  });

  it('every metric in the Grafana and Prometheus files is registered in the source', async () => {
    expect(MONITORING_FILES.length).toBeGreaterThan(0);
    const defaults = await defaultMetricNames();
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const file of MONITORING_FILES) {
      for (const m of read(file).matchAll(/reborn_[a-z0-9_]+/g)) {
        const n = m[0];
        seen.add(n);
        const base = n.replace(/_(bucket|sum|count)$/, '');
        const ok = inSource(n) || inSource(base) || defaults.has(n) || defaults.has(base);
        if (!ok) problems.push(`${rel(file)}: ${n} is not registered in packages/*/src`);
      }
    }
    for (const needed of [
      'reborn_proxy_commands_total',
      'reborn_proxy_command_duration_seconds_bucket',
      'reborn_proxy_command_errors_total',
      'reborn_proxy_clients',
      'reborn_proxy_backend_up',
      'reborn_proxy_held_requests',
      'reborn_proxy_fenced',
      'reborn_proxy_barrier_acks_total',
    ]) {
      expect(seen, `the dashboard and rules use ${needed}`).toContain(needed);
    }
    expect([...new Set(problems)]).toEqual([]);
  });

  it('the Grafana dashboard: unique panel ids, no overlapping panels, queries on the datasource variable', () => {
    for (const file of JSON_FILES.filter((p) => p.startsWith(join(DEPLOY, 'grafana') + '/'))) {
      const d = obj(JSON.parse(read(file)));
      const panels = arr(d['panels']).map(obj);
      expect(panels.length, rel(file)).toBeGreaterThan(0);
      const ids = panels.map((p) => p['id']);
      expect(new Set(ids).size, `${rel(file)}: panel ids`).toBe(ids.length);
      const boxes = panels.map((p) => ({ title: str(p['title']), ...(obj(p['gridPos']) as { x: number; y: number; w: number; h: number }) }));
      for (let i = 0; i < boxes.length; i++) {
        const a = boxes[i]!;
        expect(a.x + a.w, `${rel(file)}: ${a.title} is wider than the grid`).toBeLessThanOrEqual(24);
        for (const b of boxes.slice(i + 1)) {
          const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
          expect(overlap, `${rel(file)}: "${a.title}" overlaps "${b.title}"`).toBe(false);
        }
      }
      const vars = arr(obj(d['templating'])['list']).map((v) => str(obj(v)['name']));
      for (const p of panels.filter((p) => p['type'] !== 'row')) {
        expect(JSON.stringify(p['datasource']), `${rel(file)}: ${str(p['title'])}`).toContain('${datasource}');
        const targets = arr(p['targets']).map(obj);
        expect(targets.length, `${rel(file)}: ${str(p['title'])} has no query`).toBeGreaterThan(0);
        for (const t of targets) {
          for (const m of str(t['expr']).matchAll(/\$(?!__)([a-zA-Z_]\w*)/g)) expect(vars, `${rel(file)}: $${m[1]} in ${str(p['title'])}`).toContain(m[1]);
        }
      }
    }
  });

  it('Prometheus files: scrape jobs have names and targets, rules have a name and an expr', () => {
    for (const file of MONITORING_FILES.filter(isYaml)) {
      for (const doc of yamlDocs(file).map(obj)) {
        const jobs = arr(doc['scrape_configs']).map(obj);
        const names = jobs.map((j) => str(j['job_name']));
        expect(new Set(names).size, `${rel(file)}: job names unique`).toBe(names.length);
        for (const j of jobs) {
          expect(str(j['job_name']), rel(file)).not.toBe('');
          expect(Boolean(j['static_configs'] ?? j['kubernetes_sd_configs']), `${rel(file)} ${str(j['job_name'])}: targets`).toBe(true);
        }
        for (const g of arr(doc['groups']).map(obj)) {
          for (const r of arr(g['rules']).map(obj)) {
            expect(str(r['alert'] ?? r['record']), `${rel(file)}: rule name`).not.toBe('');
            expect(str(r['expr']), `${rel(file)} ${str(r['alert'])}: expr`).not.toBe('');
          }
        }
        expect(jobs.length + arr(doc['groups']).length, `${rel(file)}: neither scrape_configs nor groups`).toBeGreaterThan(0);
      }
    }
  });

  it('every label the queries use exists', () => {
    const known = new Set([...PROMETHEUS_LABELS, ...sourceLabels()]);
    // Labels the scrape configs attach (static `labels:` and relabel target_label).
    for (const file of MONITORING_FILES.filter(isYaml)) {
      for (const doc of yamlDocs(file)) {
        for (const t of stringsUnder(doc, new Set(['target_label']))) known.add(t);
        const visit = (n: unknown): void => {
          if (Array.isArray(n)) return n.forEach(visit);
          if (!isObj(n)) return;
          if (Array.isArray(n['targets']) && isObj(n['labels'])) for (const k of Object.keys(n['labels'])) known.add(k);
          Object.values(n).forEach(visit);
        };
        visit(doc);
      }
    }
    const problems: string[] = [];
    for (const file of MONITORING_FILES) {
      for (const doc of parsedMonitoring(file)) {
        for (const expr of stringsUnder(doc, new Set(['expr']))) {
          for (const l of promqlLabels(expr)) if (!known.has(l)) problems.push(`${rel(file)}: label ${l} in ${expr}`);
        }
        for (const legend of stringsUnder(doc, new Set(['legendFormat', 'textFormat']))) {
          for (const m of legend.matchAll(/\{\{\s*([a-zA-Z_]\w*)\s*\}\}/g)) if (!known.has(m[1]!)) problems.push(`${rel(file)}: legend label ${m[1]}`);
        }
        for (const text of stringsUnder(doc, new Set(['summary', 'description']))) {
          for (const m of text.matchAll(/\$labels\.([a-zA-Z_]\w*)/g)) if (!known.has(m[1]!)) problems.push(`${rel(file)}: $labels.${m[1]}`);
        }
      }
    }
    expect([...new Set(problems)]).toEqual([]);
  });
});
