import { expect, it } from "vitest";
import type { KernelChannel } from "../protocol";
import { EvidencePanel } from "./evidence";

const EVIL = "<img src=x onerror=alert(1)>";

function evidence(modality: string) {
  return {
    id: EVIL, flags: ["label_issue"], modality, metric: "cosine",
    lines: [["sample", `'${EVIL}' (row 3)`], ["label", `'${EVIL}'`], ["neighbours (cosine)", "shown as cards"]],
    neighbours: [{ id: "n1", label: EVIL, distance: 0.1234, flagged: true },
                 { id: EVIL, label: null, distance: 0.5, flagged: false }],
    neighbour_rows: [7, 9], neighbour_snippets: [EVIL, "plain text"],
  };
}

function fakeChannel(modality: string, asked: string[]): KernelChannel {
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return {
    on: () => undefined,
    request: async (kind: string, body: Record<string, unknown>) => {
      asked.push(kind);
      if (kind === "explain") return { content: evidence(modality), buffers: [] };
      if (kind === "thumbs") {
        expect(body.rows).toEqual([7, 9]);
        return { content: { rows: [7], mime: "image/png", errors: { 9: EVIL } }, buffers: [new DataView(png.buffer)] };
      }
      throw new Error(`unexpected ${kind}`);
    },
  } as unknown as KernelChannel;
}

it("shows the evidence and the neighbours' snippets as text, never as HTML", async () => {
  const asked: string[] = [];
  const panel = new EvidencePanel(fakeChannel("text", asked));
  document.body.append(panel.root);
  await panel.show(3);
  expect(asked).toEqual(["explain"]);
  expect(panel.root.dataset.ready).toBe("true");
  expect(panel.root.dataset.row).toBe("3");
  expect(panel.root.querySelector("img")).toBeNull();
  expect(panel.root.querySelector(".dqx-evidence-title")!.textContent).toContain(EVIL);
  const cards = [...panel.root.querySelectorAll<HTMLElement>(".dqx-evidence-nb")];
  expect(cards.map((c) => c.dataset.id)).toEqual(["n1", EVIL]);
  expect(cards[0].querySelector(".dqx-evidence-snippet")!.textContent).toBe(EVIL);
  expect(cards[0].querySelector(".dqx-evidence-nb-label")!.textContent).toBe(EVIL);
  expect(cards[0].classList.contains("dqx-flagged")).toBe(true);
  expect(cards[1].querySelector(".dqx-evidence-nb-label")!.textContent).toBe("(unlabelled)");
  expect(cards[0].querySelector(".dqx-evidence-nb-dist")!.textContent).toBe("d 0.123");
  // the neighbours are cards, not a line of the table
  expect([...panel.root.querySelectorAll("th")].map((t) => t.textContent)).toEqual(["sample", "label"]);
  panel.root.remove();
});

it("asks for the neighbours' thumbnails for images and says why one is missing", async () => {
  const asked: string[] = [];
  const panel = new EvidencePanel(fakeChannel("image", asked));
  await panel.show(3);
  expect(asked).toEqual(["explain", "thumbs"]);
  expect(panel.root.querySelectorAll("img.dqx-evidence-thumb").length).toBe(1);
  const missing = panel.root.querySelector(".dqx-evidence-nb[data-row='9'] .dqx-placeholder")!;
  expect(missing.textContent).toBe(`no image: ${EVIL}`);
  expect(panel.root.dataset.neighbours).toBe("2");
});

it("shows the evidence anew when the kernel pushes new flags (a review action, a threshold)", async () => {
  const asked: string[] = [];
  let push: () => void = () => undefined;
  const channel = { ...fakeChannel("text", asked), on: (kind: string, h: () => void) => { if (kind === "flags") push = h; } };
  const panel = new EvidencePanel(channel as unknown as KernelChannel);
  push();
  expect(asked).toEqual([]); // nothing shown yet: nothing to refresh
  await panel.show(3);
  push();
  await new Promise((r) => setTimeout(r, 0));
  expect(asked).toEqual(["explain", "explain"]);
});
