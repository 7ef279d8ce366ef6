import { Redis } from 'ioredis';
import { spawn } from 'node:child_process';
import { copyInChunks } from './packages/config/dist/chunk-copy.js';
const a = new Redis(27101), b = new Redis(27102);
const maxLat = Number(process.argv[2] ?? 10);
async function withProbe(fn) {
  const child = spawn(process.execPath, ['probe.tmp.mjs', '27101'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = ''; child.stdout.on('data', (d) => (out += d));
  await new Promise((r) => setTimeout(r, 1500));
  const t0 = performance.now(); await fn(); const took = performance.now() - t0;
  child.kill('SIGTERM'); await new Promise((r) => child.once('exit', r));
  return { ...JSON.parse(out), took: Math.round(took) };
}
async function fill(type, n) {
  await a.flushall(); await b.flushall();
  for (let i = 0; i < n; i += 1000) { const p = a.pipeline(); const args=[];
    for (let j=i;j<i+1000;j++) { if (type==='hash') args.push('field:'+j,'value-'+j); else if (type==='zset') args.push(String(j%977),'m'+j); else args.push('item-'+j); }
    if (type==='hash') p.hset('k',...args); else if (type==='zset') p.zadd('k',...args); else p.rpush('k',...args); await p.exec(); }
}
for (const [type, n] of (process.argv[4] ?? 'hash:2000000,list:1000000,zset:1000000').split(',').map((x) => [x.split(':')[0], Number(x.split(':')[1])])) {
  await fill(type, n);
  const mig = process.argv[3] === 'mig' ? await withProbe(() => a.call('MIGRATE','127.0.0.1','27102','k','0','60000')) : null;
  if (mig) await b.call('MIGRATE','127.0.0.1','27101','k','0','60000');
  await b.del('tmp');
  let maxRead = 0, maxChunk = 0;
  const cp = await withProbe(() => copyInChunks({ src: a, dst: b, key: Buffer.from('k'), tmp: Buffer.from('tmp'), type, maxSourceLatencyMs: maxLat, srcAddr: 'a', dstAddr: 'b', onChunk: (p) => { maxRead = Math.max(maxRead, p.latencyMs); maxChunk = Math.max(maxChunk, p.chunk); } }));
  console.log(type, n, 'MIGRATE:', JSON.stringify(mig), '| chunked:', JSON.stringify(cp), 'elements/s', Math.round(n / (cp.took/1000)), 'max read', maxRead.toFixed(1), 'max chunk', maxChunk);
}
process.exit(0);
