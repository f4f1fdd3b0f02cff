import { expect, it } from "vitest";
import { actionForKey } from "./keys";

const classes = ["cat", "dog", "<img src=x onerror=alert(1)>"];

it("digits relabel to the class with that number", () => {
  expect(actionForKey("0", classes)).toEqual({ action: "relabel", label: "cat" });
  expect(actionForKey("1", classes)).toEqual({ action: "relabel", label: "dog" });
  expect(actionForKey("2", classes)).toEqual({ action: "relabel", label: classes[2] });
  expect(actionForKey("7", classes)).toBeNull();
});

it("d drops, o marks fine, z undoes; modifiers leave keys to the browser", () => {
  expect(actionForKey("d", classes)).toEqual({ action: "drop" });
  expect(actionForKey("o", classes)).toEqual({ action: "mark_ok" });
  expect(actionForKey("z", classes)).toEqual({ action: "undo" });
  expect(actionForKey("z", classes, true)).toBeNull();
  expect(actionForKey("q", classes)).toBeNull();
  expect(actionForKey("a", classes)).toEqual({ action: "accept" });
  expect(actionForKey("a", classes, true)).toBeNull();
});
