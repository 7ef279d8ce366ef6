#!/usr/bin/env node
// Makes sure the system programs reborn runs against are installed: redis-server (with
// redis-cli and redis-benchmark), etcd, and Debian's chromium at /usr/bin/chromium (the
// dashboard's browser test drives it with playwright-core; no browser is downloaded). As
// root on Debian/Ubuntu they are installed with apt-get when missing; otherwise this prints
// the command to run and fails.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

// `--run`: only what a local cluster runs on (npm start); the browser is for the tests.
const forRunning = process.argv.includes('--run');
const needed = [
  { bin: 'redis-server', pkg: 'redis-server' },
  { bin: 'redis-cli', pkg: 'redis-tools' },
  { bin: 'redis-benchmark', pkg: 'redis-tools' },
  { bin: 'etcd', pkg: 'etcd-server' },
  // test/dashboard-browser.test.ts launches exactly this path.
  { bin: '/usr/bin/chromium', pkg: 'chromium' },
].filter((n) => !forRunning || (n.bin !== '/usr/bin/chromium' && n.bin !== 'redis-benchmark'));

const have = (bin) =>
  bin.startsWith('/') ? existsSync(bin) : spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
const missing = needed.filter((n) => !have(n.bin));
if (missing.length === 0) process.exit(0);

const pkgs = [...new Set(missing.map((m) => m.pkg))];
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (!isRoot || !have('apt-get')) {
  console.error(`reborn needs ${missing.map((m) => m.bin).join(', ')}. Install them with:\n  sudo apt-get install -y ${pkgs.join(' ')}`);
  process.exit(1);
}
console.error(`installing ${pkgs.join(' ')} with apt-get…`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
try {
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env });
} catch {
  console.error(`apt-get failed; install the packages by hand: apt-get install -y ${pkgs.join(' ')}`);
  process.exit(1);
}
const still = missing.filter((m) => !have(m.bin));
if (still.length > 0) {
  console.error(`still missing after apt-get: ${still.map((m) => m.bin).join(', ')}`);
  process.exit(1);
}
