/**
 * The shape of the code, checked (docs/architecture.md §1): the package import rule, no import
 * cycle inside a package (type-only imports included), no source file past 600 lines (the
 * generated command table aside), etcd reached only through coordinator, and no citation of a
 * design document that is not in the repository. Reads files; starts nothing.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const PACKAGES = ['protocol', 'coordinator', 'proxy', 'config', 'agent', 'testkit'];

/** Non-test TypeScript sources of a package. */
function sources(pkg: string): string[] {
  const dir = join(REPO, 'packages', pkg, 'src');
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'))
    .map((f) => join(dir, f));
}

/** `from '…'` specifiers of imports and re-exports (type-only ones too). */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'";]*?\bfrom\s+['"]([^'"]+)['"]/g)].map((m) => m[1]!);
}

const rel = (f: string): string => relative(REPO, f);

describe('code structure', () => {
  it('proxy, config and agent never import each other; protocol imports nothing of ours', () => {
    const allowed: Record<string, string[]> = {
      protocol: [],
      coordinator: ['protocol'],
      proxy: ['protocol', 'coordinator'],
      config: ['protocol', 'coordinator'],
      agent: ['coordinator'],
      testkit: ['protocol', 'coordinator'],
    };
    const bad: string[] = [];
    for (const pkg of PACKAGES) {
      for (const file of sources(pkg)) {
        for (const spec of specifiers(file)) {
          const m = /^@reborn\/([a-z]+)/.exec(spec);
          if (m && m[1] !== pkg && !allowed[pkg]!.includes(m[1]!)) bad.push(`${rel(file)} imports ${spec}`);
        }
      }
    }
    expect(bad).toEqual([]);
  });

  it('config and agent reach etcd only through coordinator', () => {
    const bad = ['config', 'agent'].flatMap((pkg) => sources(pkg).filter((f) => specifiers(f).includes('etcd3')).map(rel));
    expect(bad).toEqual([]);
  });

  it('no import cycle inside any package', () => {
    const cycles: string[] = [];
    for (const pkg of PACKAGES) {
      const graph = new Map<string, string[]>();
      for (const file of sources(pkg)) {
        const deps = specifiers(file)
          .filter((s) => s.startsWith('.'))
          .map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts'));
        graph.set(file, deps);
      }
      const state = new Map<string, 'open' | 'done'>();
      const stack: string[] = [];
      const visit = (n: string): void => {
        state.set(n, 'open');
        stack.push(n);
        for (const d of graph.get(n) ?? []) {
          if (!graph.has(d)) continue;
          if (state.get(d) === 'open') cycles.push(stack.slice(stack.indexOf(d)).concat(d).map(rel).join(' → '));
          else if (!state.has(d)) visit(d);
        }
        stack.pop();
        state.set(n, 'done');
      };
      for (const f of graph.keys()) if (!state.has(f)) visit(f);
    }
    expect(cycles).toEqual([]);
  });

  it('no source file over 600 lines but the generated command table', () => {
    const long = PACKAGES.flatMap((pkg) => sources(pkg))
      .filter((f) => !f.endsWith('generated.ts'))
      .map((f) => [rel(f), readFileSync(f, 'utf8').split('\n').length] as const)
      .filter(([, n]) => n > 600);
    expect(long).toEqual([]);
  });

  it('cites no design document outside the repository', () => {
    const bad = PACKAGES.flatMap((pkg) => sources(pkg)).filter((f) => readFileSync(f, 'utf8').includes('DESIGN.md')).map(rel);
    expect(bad).toEqual([]);
  });
});
