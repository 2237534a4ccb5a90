/**
 * Which queued message is due next. An in-memory index over queue/ (rebuilt from disk at start):
 * a binary heap of (due time, id), plus the latest due time per id so a re-scheduled id's stale
 * heap entries are skipped.
 */
export class Scheduler {
  private heap: Array<{ at: number; id: string }> = [];
  private readonly due = new Map<string, number>();

  get size(): number {
    return this.due.size;
  }

  schedule(id: string, at: number): void {
    this.due.set(id, at);
    this.push({ at, id });
  }

  remove(id: string): void {
    this.due.delete(id);
  }

  has(id: string): boolean {
    return this.due.has(id);
  }

  /** The next id due at or before `now`, removed from the index; null when none is due. */
  takeDue(now: number): string | null {
    for (;;) {
      const top = this.heap[0];
      if (!top) return null;
      if (this.due.get(top.id) !== top.at) {
        this.pop();
        continue;
      }
      if (top.at > now) return null;
      this.pop();
      this.due.delete(top.id);
      return top.id;
    }
  }

  /** Takes every scheduled id out (to hand them to another scheduler), earliest first. */
  drain(): Array<{ id: string; at: number }> {
    const all = [...this.due].map(([id, at]) => ({ id, at })).sort((a, b) => (less(a, b) ? -1 : 1));
    this.due.clear();
    this.heap = [];
    return all;
  }

  /** When the earliest message becomes due, or null when nothing is scheduled. */
  nextDueAt(): number | null {
    while (this.heap[0] && this.due.get(this.heap[0].id) !== this.heap[0].at) this.pop();
    return this.heap[0]?.at ?? null;
  }

  private push(item: { at: number; id: string }): void {
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (less(h[parent]!, h[i]!)) break;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (!last || h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && less(h[l]!, h[m]!)) m = l;
      if (r < h.length && less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[m], h[i]] = [h[i]!, h[m]!];
      i = m;
    }
  }
}

/** Earlier due time first; ties by id, which sorts by arrival. */
function less(a: { at: number; id: string }, b: { at: number; id: string }): boolean {
  return a.at < b.at || (a.at === b.at && a.id < b.id);
}
