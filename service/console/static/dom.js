// The console's formatting and DOM helpers. Amounts arrive as exact decimal strings and are shown
// exactly (only trailing zeros trimmed); text from the data only ever goes through textContent.
"use strict";
window.SwitchyardConsole = window.SwitchyardConsole || {};
window.SwitchyardConsole.dom = (function () {
  // ---- formatting ---------------------------------------------------------------------------------
  function usd(value) {
    if (value === null || value === undefined) return "–";
    let s = String(value);
    const negative = s.startsWith("-");
    if (negative) s = s.slice(1);
    const [whole, fraction = ""] = s.split(".");
    let frac = fraction.replace(/0+$/, "");
    while (frac.length < 2) frac += "0";
    return (negative ? "-$" : "$") + whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + "." + frac;
  }
  const count = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const pct = (p) => (p === null || p === undefined ? "–" : p + "%");
  const utc = (iso) => (iso ? iso.replace("T", " ").replace(/(\.\d+)?\+00:00$/, "").replace(/Z$/, "") + " UTC" : "–");

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "cls") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  const moneyCell = (v) => el("td", { cls: "num" + (String(v).startsWith("-") ? " negative" : ""),
    "data-usd": v === null ? "" : v, text: usd(v) });
  const countCell = (n) => el("td", { cls: "num", "data-count": n === null ? "" : String(n), text: count(n) });
  const textCell = (t, cls) => el("td", { cls: cls || null, text: t === null || t === undefined ? "–" : String(t) });

  // columns: [{title, num, cell(row) -> td}]; rows get data-key from key(row).
  function fillTable(node, columns, rows, key) {
    node.replaceChildren();
    node.append(el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { cls: c.num ? "num" : null, text: c.title })))));
    const body = el("tbody");
    for (const row of rows) {
      body.append(el("tr", { "data-key": key ? key(row) : null }, ...columns.map((c) => c.cell(row))));
    }
    if (!rows.length) body.append(el("tr", {}, el("td", { colSpan: columns.length, cls: "hint", text: "Nothing in this range." })));
    node.append(body);
  }

  function card(label, value, attrs) {
    return el("div", { cls: "card" }, el("div", { cls: "label", text: label }),
      el("div", { cls: "value", text: value, ...(attrs || {}) }));
  }

  return { usd, count, pct, utc, el, moneyCell, countCell, textCell, fillTable, card };
})();
