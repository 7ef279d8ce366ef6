/**
 * While a wait goes on through etcd failures, tells the operator so: after 3 s without an
 * answer, then every 5 s, and once etcd answers again. (A silent CLI looks hung.)
 */
export function etcdTrouble(say: (line: string) => void, hint: string): (err: Error | null) => void {
  let since: number | null = null;
  let saidAt = 0;
  return (err) => {
    const now = Date.now();
    if (err === null) {
      if (saidAt > 0) say('etcd answers again');
      since = null;
      saidAt = 0;
      return;
    }
    since ??= now;
    if (now - since >= 3000 && now - saidAt >= 5000) {
      saidAt = now;
      say(`etcd has not answered for ${Math.round((now - since) / 1000)} s (${err.message}); still waiting (${hint})`);
    }
  };
}
