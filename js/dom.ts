// DOM helpers. Every text from the data (labels, ids, file names, snippets) goes in through
// textContent, never innerHTML, so a label like `<img src=x onerror=alert(1)>` stays a string.

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = "", text?: string):
    HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function option(value: string, text: string, selected = false): HTMLOptionElement {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  o.selected = selected;
  return o;
}

export function labelled(text: string, control: HTMLElement): HTMLLabelElement {
  const l = el("label", "dqx-field");
  l.append(el("span", "", text), control);
  return l;
}
