/**
 * Coalesces socket writes per event-loop turn. Sessions and backend connections mark
 * themselves dirty as they produce output; one setImmediate callback then flushes each once.
 * setImmediate (not nextTick) runs after the whole poll phase, so requests from many clients
 * read in the same turn leave in one write per backend connection, and replies from several
 * backends for one client leave in one write to that client.
 */
export interface Flushable {
  /** Set by the flusher while the object is queued; prevents queueing it twice. */
  flushQueued: boolean;
  flush(): void;
}

export class Flusher {
  /** `onError` hears of a flush that threw (a bug): the rest of the batch is flushed anyway. */
  constructor(private readonly onError: (err: unknown) => void = () => undefined) {}

  private queue: Flushable[] = [];
  private scheduled = false;
  private readonly run = (): void => {
    this.scheduled = false;
    // Flushing can queue more work (a backend reply completing a session); loop until quiet.
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      for (const item of batch) {
        item.flushQueued = false;
        try {
          item.flush();
        } catch (err) {
          // One socket's failure must not leave the others of the batch unflushed for good.
          this.onError(err);
        }
      }
    }
  };

  mark(item: Flushable): void {
    if (item.flushQueued) return;
    item.flushQueued = true;
    this.queue.push(item);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }
}
