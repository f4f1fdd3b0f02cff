import { expect, it } from "vitest";
import { LRU } from "./lru";
import { visibleWindow } from "./window";

it("evicts the least recently used thumbnail", () => {
  const evicted: string[] = [];
  const lru = new LRU<number, string>(2, (v) => evicted.push(v));
  lru.set(1, "a");
  lru.set(2, "b");
  lru.get(1);
  lru.set(3, "c");
  expect(evicted).toEqual(["b"]);
  expect(lru.has(1) && lru.has(3) && !lru.has(2)).toBe(true);
});

it("only the cells on screen (plus overscan) exist for a million samples", () => {
  const w = visibleWindow(1_000_000, 660, 17600, 360, 132, 176, 2);
  expect(w.columns).toBe(5);
  expect(w.firstRow).toBe(98);
  expect(w.last - w.first).toBeLessThanOrEqual(5 * 7);
  expect(w.totalHeight).toBe(200_000 * 176);
});
