// The map's tools, as in jupyter-scatter and plotly: with "pan" a plain drag pans; with "lasso" or
// "box" a plain drag selects with that shape. Clicking the active selection tool again goes back
// to pan. Shift-drag selects in every mode (with the lasso when panning), and press-and-hold
// starts a lasso when panning (touch screens have no shift key).

export type Tool = "pan" | "lasso" | "box";
export type DragAction = "pan" | "lasso" | "box";

export const TOOLS: readonly Tool[] = ["pan", "lasso", "box"];

/** The tool in use after the user clicks the button of `clicked` while `current` is active. */
export function toolAfterClick(current: Tool, clicked: Tool): Tool {
  if (clicked === current && clicked !== "pan") return "pan";
  return clicked;
}

/** What a drag does in `tool`, with or without shift held at the press. */
export function dragAction(tool: Tool, shift: boolean): DragAction {
  if (tool === "pan") return shift ? "lasso" : "pan";
  return tool;
}

/** The button's tooltip. */
export function toolTitle(tool: Tool): string {
  if (tool === "pan") return "pan: drag moves the map (shift-drag, or press and hold, selects with a lasso)";
  return `${tool}: drag selects with a ${tool === "box" ? "rectangle" : "lasso"} (click again to pan; ` +
    "ctrl adds, alt removes)";
}
