import { Redis } from 'ioredis';
const probe = new Redis(Number(process.argv[2]));
let max = 0, n = 0, over = 0;
process.on('SIGTERM', () => { console.log(JSON.stringify({ max: +max.toFixed(1), n, over50: over })); process.exit(0); });
for (;;) { const t = performance.now(); await probe.get('x'); const d = performance.now() - t; if (d > max) max = d; if (d > 50) over++; n++; }
