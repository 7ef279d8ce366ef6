// The statistics and report formatting of the benchmark scripts: medians over rounds, paired
// ratios, the CPU-idle sampling and the markdown cells. Pure helpers (no process started);
// lib.mjs re-exports them, so the scripts import everything from './lib.mjs'.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

// ---------------------------------------------------------------------------------------------
// Statistics

/** Median of numbers (NaN for none). Medians over rounds: one disturbed round doesn't move them. */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Median ops/s, p50 and p99, and the min–max of ops/s, over the rounds of one cell; undefined
 * when any round failed: a median over the rounds that happened to work would hide a target
 * that fails intermittently.
 */
export function cellStats(runs) {
  if (runs.length === 0 || !runs.every((r) => r.ok)) return undefined;
  return {
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    min: Math.min(...runs.map((r) => r.rps)),
    max: Math.max(...runs.map((r) => r.rps)),
  };
}

/**
 * `a`'s ops/s over `b`'s as the median of the per-round ratios. Within a round the two ran
 * back to back, so pairing by round cancels load that drifts between rounds (it can differ a
 * little from the ratio of the two medians). Undefined unless every round of both worked.
 */
export function pairedRatio(a, b) {
  if (a === undefined || b === undefined || a.length === 0 || a.length !== b.length) return undefined;
  if (![...a, ...b].every((r) => r.ok)) return undefined;
  return median(a.map((r, i) => r.rps / b[i].rps));
}

/** A "Spread" entry: `name min–max` ops/s over the rounds, or `name n/a (why)` of the first failed round. */
export function spreadCell(name, runs) {
  const bad = runs.find((r) => !r.ok);
  if (bad) return `${name} n/a (${bad.why})`;
  return `${name} ${fmtOps(Math.min(...runs.map((r) => r.rps)))}–${fmtOps(Math.max(...runs.map((r) => r.rps)))}`;
}

/**
 * Share of all CPUs busy over `ms`, from /proc/stat (null where there is none). Sampled while
 * no benchmark runs — our servers are idle then — so it measures what *other* processes take:
 * a busy machine makes every number noisy, and the reports say so.
 */
export async function cpuBusy(ms = 1000) {
  const read = () => {
    try {
      const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
      return { idle: (f[3] ?? 0) + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
    } catch {
      return null;
    }
  };
  const a = read();
  await sleep(ms);
  const b = read();
  if (a === null || b === null || b.total === a.total) return null;
  return 1 - (b.idle - a.idle) / (b.total - a.total);
}

/** Above this share of the CPUs taken by others, a report calls the machine not idle. */
export const BUSY_LIMIT = 0.15;

/** cpuBusy() samples as `12 %, 3 %`, and whether any was over BUSY_LIMIT; null if one is unknown. */
export function busySummary(samples) {
  if (samples.length === 0 || !samples.every((b) => b !== null)) return null;
  const worst = Math.max(...samples);
  return { list: samples.map((b) => `${Math.round(b * 100)} %`).join(', '), worst, notIdle: worst > BUSY_LIMIT };
}

// ---------------------------------------------------------------------------------------------
// Report formatting

/** The report's header facts about the machine; `unknownCpu` names a CPU without a model. */
export function machineInfo(unknownCpu = 'unknown cpu') {
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    nproc: spawnSync('nproc', { encoding: 'utf8' }).stdout?.trim() ?? String(os.availableParallelism()),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? unknownCpu,
    node: process.version,
    redis: /v=(\S+)/.exec(spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1] ?? '?',
    os: `${os.type()} ${os.release()}`,
  };
}

/** Whole ops/s with thousands separators, `n/a` for a missing cell. */
export function fmtOps(x) {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a';
}

/** A number with `digits` decimals (latencies in ms: 3), `n/a` for a missing cell. */
export function fmtNum(x, digits = 3) {
  return Number.isFinite(x) ? x.toFixed(digits) : 'n/a';
}

/** The first two lines of a markdown table: the header, and the first column left-aligned, the rest right. */
export function tableHead(cols) {
  return [`| ${cols.join(' | ')} |`, `|${cols.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
}

