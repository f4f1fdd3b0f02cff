// A small least-recently-used cache for thumbnails (object URLs are revoked on eviction).

export class LRU<K, V> {
  private map = new Map<K, V>();
  constructor(private capacity: number, private onEvict?: (value: V) => void) {
    if (capacity < 1) throw new RangeError("LRU capacity must be at least 1");
  }
  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  has(key: K): boolean {
    return this.map.has(key);
  }
  set(key: K, value: V): void {
    if (this.map.has(key)) this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value as K;
      const v = this.map.get(oldest) as V;
      this.map.delete(oldest);
      this.onEvict?.(v);
    }
  }
  clear(): void {
    if (this.onEvict) for (const v of this.map.values()) this.onEvict(v);
    this.map.clear();
  }
  get size(): number {
    return this.map.size;
  }
}
