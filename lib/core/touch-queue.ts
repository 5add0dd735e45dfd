/** A touch waiting to be written: the session's public id and when it was active (epoch ms). */
export interface Touch {
  publicId: string;
  now: number;
}

/**
 * Throttled last-active writes. A hit that is due queues its id; a few milliseconds later every
 * queued touch goes to Redis in one batch (one pipeline, one per user slot on a Cluster).
 * `pending()` answers what is queued or being written, so the device list can show activity
 * Redis has not seen yet. `close()` flushes.
 */
export class TouchQueue {
  #queued = new Map<string, number>();
  #writing: Map<string, number> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #closed = false;
  readonly #write: (items: Touch[]) => Promise<void>;

  constructor(write: (items: Touch[]) => Promise<void>) {
    this.#write = write;
  }

  queue(publicId: string, now: number): void {
    this.#queued.set(publicId, now);
    if (this.#timer === undefined && !this.#closed) {
      this.#timer = setTimeout(() => { void this.flush(); }, 5);
    }
  }

  /** When `publicId` was last active according to a touch not yet in Redis, or 0. */
  pending(publicId: string): number {
    return this.#queued.get(publicId) ?? this.#writing?.get(publicId) ?? 0;
  }

  /** Write every queued touch now. Failures are the writer's to report; a flush never throws. */
  async flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#flushing;
    if (this.#queued.size === 0) return;
    const items: Touch[] = [];
    for (const [publicId, now] of this.#queued) items.push({ publicId, now });
    this.#writing = this.#queued;
    this.#queued = new Map();
    this.#flushing = this.#write(items).catch(() => {}).finally(() => {
      this.#flushing = undefined;
      this.#writing = undefined;
    });
    await this.#flushing;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }
}
