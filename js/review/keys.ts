// Keyboard of the review panel: digits relabel to the class with that number, `d` drops,
// `o` marks as fine, `z` undoes, `a` accepts the suggested labels (of the selection, else of the
// focused card). Pure so it can be tested without a DOM.

export type ReviewAction =
  | { action: "relabel"; label: string }
  | { action: "drop" }
  | { action: "mark_ok" }
  | { action: "undo" }
  | { action: "accept" }
  | null;

export function actionForKey(key: string, classes: readonly string[], modifiers = false): ReviewAction {
  if (modifiers) return null;
  if (key.length === 1 && key >= "0" && key <= "9") {
    const i = Number(key);
    return i < classes.length ? { action: "relabel", label: classes[i] } : null;
  }
  switch (key) {
    case "d":
    case "Delete":
      return { action: "drop" };
    case "o":
      return { action: "mark_ok" };
    case "z":
      return { action: "undo" };
    case "a":
      return { action: "accept" };
    default:
      return null;
  }
}
