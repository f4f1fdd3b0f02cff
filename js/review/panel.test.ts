import { expect, it } from "vitest";
import { KernelChannel } from "../protocol";
import { ReviewPanel } from "./panel";

// A widget model that records what the panel sends to the kernel.
function recordingChannel() {
  const sent: Array<Record<string, unknown>> = [];
  const model = { send: (content: Record<string, unknown>) => sent.push(content), on: () => {}, off: () => {} };
  return { channel: new KernelChannel(model as never), sent };
}

function press(panel: ReviewPanel, key: string): void {
  panel.key(new KeyboardEvent("keydown", { key }));
}

it("`a` carries the 'with duplicates' box, on the focused card and on a selection", () => {
  const { channel, sent } = recordingChannel();
  let count = 0;
  const panel = new ReviewPanel(channel, ["cat", "dog"], true, () => {},
    () => ({ grid: { version: 3, total: 2 }, selection: { encoding: "indices", data: new Uint8Array(8), count } }));
  document.body.append(panel.root);
  panel.show({ row: 7, id: "x", label: "cat", suggested_label: "dog" } as never);
  press(panel, "a");
  expect(sent.at(-1)).toMatchObject({ kind: "review", action: "accept", scope: "sample", rows: [7], with_duplicates: false });
  const box = panel.root.querySelector("input.dqx-with-duplicates") as HTMLInputElement;
  box.click();
  press(panel, "a");
  expect(sent.at(-1)).toMatchObject({ action: "accept", scope: "sample", with_duplicates: true });
  const scope = panel.root.querySelector("select.dqx-review-scope") as HTMLSelectElement;
  scope.value = "all"; // no selection, "apply to: all in the grid": every card of the (filtered) grid
  press(panel, "a");
  expect(sent.at(-1)).toMatchObject({ action: "accept", scope: "all", rows: [], shown: { selection_count: 0 } });
  scope.value = "sample";
  count = 2; // a selection: `a` acts on it, and says what the browser shows
  press(panel, "a");
  expect(sent.at(-1)).toMatchObject({ action: "accept", scope: "all", with_duplicates: true,
                                      shown: { selection_count: 2, grid_version: 3, grid_total: 2 } });
  panel.root.remove();
});
