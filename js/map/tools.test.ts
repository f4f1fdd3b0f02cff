import { expect, it } from "vitest";
import { dragAction, toolAfterClick } from "./tools";

it("clicking lasso or box makes a plain drag select; clicking it again, or pan, makes it pan", () => {
  expect(toolAfterClick("pan", "lasso")).toBe("lasso");
  expect(toolAfterClick("pan", "box")).toBe("box");
  expect(toolAfterClick("lasso", "box")).toBe("box");
  expect(toolAfterClick("box", "lasso")).toBe("lasso");
  expect(toolAfterClick("lasso", "lasso")).toBe("pan");
  expect(toolAfterClick("box", "box")).toBe("pan");
  expect(toolAfterClick("lasso", "pan")).toBe("pan");
  expect(toolAfterClick("pan", "pan")).toBe("pan");
});

it("a plain drag does what the tool says; shift-drag selects in every mode", () => {
  expect(dragAction("pan", false)).toBe("pan");
  expect(dragAction("lasso", false)).toBe("lasso");
  expect(dragAction("box", false)).toBe("box");
  expect(dragAction("pan", true)).toBe("lasso");
  expect(dragAction("lasso", true)).toBe("lasso");
  expect(dragAction("box", true)).toBe("box");
});
