// matdiff's page: the state lives in the URL; every change asks the server again (debounced)
// and shows what it answers. Server text is only ever set as text (never as HTML).
"use strict";

const GAUSSIAN = {
  expr: "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-1/2*(x - m)'*inv(S)*(x - m))",
  declare: "S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar",
  wrt: "S",
};
const KINDS = ["scalar", "vector", "matrix"];
const SHOWN = ["symmetric", "posdef", "diagonal"];
const DEBOUNCE_MS = 300;
const $ = (id) => document.getElementById(id);

const state = {
  expr: "", wrt: "", order: "1", symmetric: "sym", layout: "shape", backend: "numpy",
  declared: new Map(),   // name -> declaration the user edited ("S: symmetric matrix(k,k)")
  source: null,          // {source, filename} of the code shown
};

// --- the URL --------------------------------------------------------------------------------

function readUrl() {
  const q = new URLSearchParams(location.search);
  const fresh = !q.has("expr");
  state.expr = fresh ? GAUSSIAN.expr : q.get("expr");
  state.wrt = fresh ? GAUSSIAN.wrt : (q.get("wrt") || "");
  for (const key of ["order", "symmetric", "layout", "backend"]) {
    if (q.has(key)) state[key] = q.get(key);
  }
  state.declared = parseDeclare(fresh ? GAUSSIAN.declare : (q.get("declare") || ""));
}

function writeUrl() {
  const q = new URLSearchParams();
  q.set("expr", state.expr);
  if (state.wrt) q.set("wrt", state.wrt);
  if (state.order !== "1") q.set("order", state.order);
  if (state.symmetric !== "sym") q.set("symmetric", state.symmetric);
  if (state.layout !== "shape") q.set("layout", state.layout);
  if (state.backend !== "numpy") q.set("backend", state.backend);
  const declare = declareText();
  if (declare) q.set("declare", declare);
  history.replaceState(null, "", "?" + q.toString());
}

// "S: symmetric matrix(k,k); x, m: vector(k)" -> Map(name -> one declaration each)
function parseDeclare(text) {
  const declared = new Map();
  for (const part of text.split(";")) {
    const colon = part.indexOf(":");
    if (colon < 0) continue;
    const type = part.slice(colon + 1).trim();
    for (const name of part.slice(0, colon).split(",")) {
      if (name.trim()) declared.set(name.trim(), `${name.trim()}: ${type}`);
    }
  }
  return declared;
}

function declareText() {
  return [...state.declared.values()].join("; ");
}

function declaration(row) {
  const dims = row.dims.filter((d) => d && d !== "None");
  const shape = row.kind === "scalar" || !dims.length ? "" : `(${dims.join(",")})`;
  return `${row.name}: ${[...row.props, row.kind + shape].join(" ")}`;
}

// --- talking to the server ------------------------------------------------------------------

let generation = 0;
let controller = null;

async function ask(endpoint, body, signal) {
  const response = await fetch(`api/${endpoint}`, {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body), signal,
  });
  let data;
  try {
    data = await response.json();
  } catch {
    data = {error: {kind: "internal", message: `the server answered ${response.status}`}};
  }
  return {ok: response.ok, data};
}

function request(extra) {
  return {
    expr: state.expr, wrt: state.wrt, declare: declareText() || null,
    order: Number(state.order), symmetric: state.symmetric, layout: state.layout, ...extra,
  };
}

// body[data-pending] is "true" from a change until everything it asked for has been shown
function pending(yes) {
  document.body.dataset.pending = String(yes);
}

let timer = null;
function soon() {
  pending(true);
  clearTimeout(timer);
  timer = setTimeout(refresh, DEBOUNCE_MS);
}

async function refresh() {
  const mine = ++generation;
  clearTimeout(timer);
  pending(true);
  if (controller) controller.abort();
  controller = new AbortController();
  const signal = controller.signal;
  writeUrl();
  showError(null);
  if (!state.expr.trim()) {
    setStatus("Type an expression.", "idle");
    pending(false);
    return;
  }
  setStatus("working…", "busy");
  try {
    const found = await ask("variables", {expr: state.expr, declare: declareText() || null},
                            signal);
    if (mine !== generation) return;
    if (!found.ok) return showError(found.data.error);
    showVariables(found.data);
    if (found.data.type_error) return showError(found.data.type_error);
    // the entrywise table (finite differences per entry) only while its section is open
    const derived = await ask("derive", request({steps: true,
                                                 entrywise: $("entrywise-section").open}),
                              signal);
    if (mine !== generation) return;
    if (!derived.ok) return showError(derived.data.error);
    showResult(derived.data);
    setStatus("", "done");
    await refreshCode(mine, signal);
  } catch (err) {
    if (err.name !== "AbortError" && mine === generation) {
      showError({kind: "network", message: `no answer from the server (${err.message})`});
    }
  } finally {
    if (mine === generation) pending(false);
  }
}

async function refreshCode(mine, signal) {
  const code = $("code").firstChild;
  code.textContent = "generating…";
  $("code").dataset.ready = "false";
  const backend = state.backend;
  const answer = await ask("source", request({backend}), signal);
  if (mine !== generation || backend !== state.backend) return;  // a newer ask will show
  state.source = answer.ok ? answer.data : null;
  code.textContent = answer.ok ? answer.data.source : answer.data.error.message;
  $("code").classList.toggle("failed", !answer.ok);
  $("code").dataset.ready = "true";
}

// --- showing --------------------------------------------------------------------------------

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.dataset.kind = kind;
  document.body.dataset.state = kind;
}

function math(element, latex, unicode, display = false) {
  element.replaceChildren();
  if (window.katex && latex) {
    try {
      window.katex.render(latex, element, {displayMode: display, throwOnError: true});
      return;
    } catch {
      // a form KaTeX cannot typeset: the Unicode text below says the same
    }
  }
  const text = document.createElement("span");
  text.className = "fallback";
  text.textContent = unicode;
  element.append(text);
}

function showVariables(data) {
  $("syntax").textContent = data.syntax === "latex" ? "(read as LaTeX)" : "";
  const names = data.variables.map((v) => v.name);
  for (const name of [...state.declared.keys()]) {
    if (!names.includes(name)) state.declared.delete(name);
  }
  if (!names.includes(state.wrt)) state.wrt = data.wrt || "";
  const wrt = $("wrt");
  wrt.replaceChildren(...names.map((n) => new Option(n, n, false, n === state.wrt)));
  const body = $("variables").tBodies[0];
  body.replaceChildren(...data.variables.map(variableRow));
  $("declared").textContent = declareText() || "(defaults)";
}

function variableRow(v) {
  const tr = document.createElement("tr");
  tr.dataset.name = v.name;
  tr.classList.toggle("edited", state.declared.has(v.name));
  const cell = (child) => {
    const td = document.createElement("td");
    td.append(child);
    tr.append(td);
    return td;
  };
  const name = document.createElement("code");
  name.textContent = v.name;
  cell(name);
  const kind = document.createElement("select");
  kind.append(...KINDS.map((k) => new Option(k, k, false, k === v.kind)));
  kind.setAttribute("aria-label", `type of ${v.name}`);
  kind.onchange = () => edit(v, {kind: kind.value});
  cell(kind);
  const dims = document.createElement("input");
  dims.value = v.dims.join(",");
  dims.size = 6;
  dims.disabled = v.kind === "scalar";
  dims.setAttribute("aria-label", `dimensions of ${v.name}`);
  dims.onchange = () => edit(v, {dims: dims.value.split(",").map((d) => d.trim())});
  cell(dims);
  for (const prop of SHOWN) {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = v.props.includes(prop);
    box.disabled = v.kind !== "matrix";
    box.setAttribute("aria-label", `${v.name} ${prop}`);
    box.onchange = () => {
      const props = v.props.filter((p) => p !== prop && !(prop === "posdef" && p === "invertible"));
      edit(v, {props: box.checked ? [...props, prop] : props});
    };
    cell(box);
  }
  return tr;
}

function edit(v, change) {
  const row = {...v, ...change};
  if (change.kind) {
    const size = KINDS.indexOf(change.kind);
    row.dims = size ? Array.from({length: size}, (_, i) => v.dims[i] || v.dims[0] || "") : [];
    if (change.kind !== "matrix") row.props = row.props.filter((p) => !SHOWN.includes(p));
  }
  state.declared.set(v.name, declaration(row));
  refresh();
}

function showResult(r) {
  document.body.dataset.shownAsDifferential = r.shown_as_differential;
  math($("function"), `f = ${r.function_latex}`, `f = ${r.function_unicode}`);
  const body = r.latex_with_f || r.latex;
  math($("derivative"), `${r.label_latex} = ${body}`,
       `${r.label_unicode} = ${r.unicode_with_f || r.unicode}`, true);
  const facts = [`shape ${r.shape_text}   (${r.layout_note}; vectors are columns)`];
  if (r.latex_with_f) facts.push("f is the expression itself");
  if (r.convention_note) facts.push(r.convention_note);
  for (const note of r.notes) facts.push(`note: ${note}`);
  $("facts").replaceChildren(...facts.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
  showCheck(r);
  if (r.shown_as_differential) {
    $("differential").textContent = "the derivative above is shown as its differential";
  } else {
    math($("differential"), `${r.differential_label_latex} = ${r.differential_latex}`,
         `${r.differential_label_unicode} = ${r.differential_unicode}`);
  }
  if (r.vec_latex) {
    math($("vec"), `${r.vec_lead_latex} = ${r.vec_latex}`,
         `${r.vec_lead_unicode} = ${r.vec_unicode}`);
    const size = document.createElement("span");
    size.className = "muted small";
    size.textContent = `${r.order === 2 ? "H" : "J"} is ${r.vec_shape}`;
    $("vec").append(size);
  } else {
    $("vec").textContent = r.vec_reason || "";
  }
  $("index").textContent = r.index ? `index form: ${r.index}` : "";
  showSteps(r);
  showEntrywise(r);
}

function showCheck(r) {
  const check = $("check");
  check.replaceChildren();
  if (r.check_error) {
    check.textContent = `numerical check ${r.check_error}`;
    check.className = "check muted";
    return;
  }
  check.className = "check";
  if (!r.check_verdict) return;
  const badge = document.createElement("span");
  badge.className = `badge ${r.check_verdict}`;
  badge.textContent = {ok: "check passed", mismatch: "MISMATCH",
                       inconclusive: "inconclusive"}[r.check_verdict];
  const error = r.check_max_relative_error;
  const words = document.createElement("span");
  words.textContent = error === 0
    ? ` agrees with central finite differences at random points to within their own ` +
      `resolution (${r.check_resolution.toExponential(0)})`
    : ` max relative error ${Number(error).toExponential(1)} against central finite ` +
      `differences at random points (their resolution ${r.check_resolution.toExponential(0)})`;
  check.append(badge, words);
}

// r.steps is Steps.to_dict(): {steps: [{rule, lhs, text, latex, unicode, result,
// result_lhs}], where: [{name, text, latex}]}, each step the whole right-hand side
function showSteps(r) {
  const box = $("steps");
  box.replaceChildren();
  box.className = r.steps ? "" : "muted small";
  if (!r.steps) {
    box.textContent = r.steps_reason;
    return;
  }
  const lhs = {df: "\\mathrm{d}f", d2f: "\\mathrm{d}^2 f"};
  r.steps.steps.forEach((step, i) => {
    const item = document.createElement("details");
    item.className = "step";
    item.open = true;
    const summary = document.createElement("summary");
    summary.textContent = `${i + 1}. ${step.rule}`;
    const shown = document.createElement("div");
    shown.className = "math";
    math(shown, `${lhs[step.lhs] || step.lhs} = ${step.latex}`, `${step.lhs} = ${step.unicode}`);
    item.append(summary, shown);
    if (step.result) item.append(paragraph(`${step.result_lhs} = ${step.result}`));
    box.append(item);
  });
  const where = r.steps.where || [];
  if (where.length) {
    const names = document.createElement("div");
    names.className = "math";
    math(names, "\\text{where } " + where.map((w) => `${w.name} = ${w.latex}`).join(",\\; "),
         "where " + where.map((w) => `${w.name} = ${w.text}`).join(", "));
    box.append(names);
  }
}

// r.entrywise is Entrywise.to_dict(): the index form, then per convention a table of
// finite differences beside the formula's entries
function showEntrywise(r) {
  const box = $("entrywise");
  box.replaceChildren();
  box.className = r.entrywise ? "" : "muted small";
  if (!r.entrywise) {
    box.textContent = r.entrywise_reason;
    return;
  }
  const e = r.entrywise;
  const formula = document.createElement("div");
  formula.className = "math";
  const where = e.where && e.where.latex ? `\\quad\\text{where } ${e.where.latex}` : "";
  math(formula, `${e.label.latex} = ${e.index.latex}${where}`,
       `${e.label.unicode || e.label.text} = ${e.index.unicode || e.index.text}`);
  box.append(formula, paragraph(`on a random instance, every dimension ${e.size} (seed ` +
                                `${e.seed}): central finite differences beside the formula`));
  if (e.omitted) box.append(paragraph(e.omitted));
  for (const t of e.tables || []) {
    box.append(paragraph(t.title ? `${t.title}: ${t.perturbation}` : t.perturbation));
    const wrap = document.createElement("div");
    wrap.className = "table-wrap";
    const table = document.createElement("table");
    table.className = "entrywise";
    const head = table.createTHead().insertRow();
    for (const c of ["entry", "finite difference", "formula", "difference"]) {
      head.append(Object.assign(document.createElement("th"), {textContent: c}));
    }
    const body = table.createTBody();
    for (const entry of t.entries) {
      const tr = body.insertRow();
      tr.insertCell().textContent = entry.label;
      for (const value of [entry.finite_difference, entry.formula]) {
        tr.insertCell().textContent = Number(value).toPrecision(8);
      }
      tr.insertCell().textContent = Number(entry.difference).toExponential(1);
    }
    wrap.append(table);
    box.append(wrap);
  }
  if (e.note) box.append(paragraph(e.note));
}

function paragraph(text) {
  return Object.assign(document.createElement("p"), {className: "muted small",
                                                     textContent: text});
}

function showError(error) {
  const box = $("expr-error");
  const declareBox = $("declare-error");
  box.hidden = declareBox.hidden = true;
  document.body.classList.toggle("has-error", !!error);
  if (!error) return;
  setStatus("", "error");
  const message = error.message;
  if (error.field === "declare") {
    declareBox.textContent = message;
    declareBox.hidden = false;
    return;
  }
  box.hidden = false;
  $("expr-message").textContent = message;
  const pointer = $("expr-pointer");
  pointer.replaceChildren();
  if (error.field === "expr" && error.column) {
    const at = error.column - 1;
    const mark = document.createElement("u");
    mark.className = "at";
    mark.textContent = state.expr.slice(at, at + 1) || " ";
    pointer.append(state.expr.slice(0, at), mark, state.expr.slice(at + 1));
  }
  pointer.hidden = !pointer.childNodes.length;
}

// --- wiring ---------------------------------------------------------------------------------

function showBackend() {
  for (const tab of document.querySelectorAll(".tabs [data-backend]")) {
    tab.setAttribute("aria-selected", tab.dataset.backend === state.backend);
  }
}

function download() {
  if (!state.source) return;
  const url = URL.createObjectURL(new Blob([state.source.source], {type: "text/x-python"}));
  const a = Object.assign(document.createElement("a"), {href: url,
                                                         download: state.source.filename});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function copy() {
  const text = $("code").textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const range = document.createRange();
    range.selectNodeContents($("code"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    document.execCommand("copy");
  }
  $("copy").textContent = "copied";
  setTimeout(() => { $("copy").textContent = "copy"; }, 1200);
}

function theme(next) {
  const root = document.documentElement;
  if (next) {
    root.dataset.theme = next;
    localStorage.setItem("matdiff-theme", next);
  } else if (localStorage.getItem("matdiff-theme")) {
    root.dataset.theme = localStorage.getItem("matdiff-theme");
  }
}

function start() {
  theme();
  readUrl();
  $("expr").value = state.expr;
  for (const key of ["order", "symmetric", "layout"]) $(key).value = state[key];
  showBackend();
  $("expr").addEventListener("input", () => { state.expr = $("expr").value; soon(); });
  $("wrt").onchange = () => { state.wrt = $("wrt").value; refresh(); };
  for (const key of ["order", "symmetric", "layout"]) {
    $(key).onchange = () => { state[key] = $(key).value; refresh(); };
  }
  $("defaults").onclick = () => { state.declared.clear(); refresh(); };
  $("entrywise-section").addEventListener("toggle", () => {
    if ($("entrywise-section").open) refresh();
  });
  for (const tab of document.querySelectorAll(".tabs [data-backend]")) {
    tab.onclick = async () => {
      state.backend = tab.dataset.backend;
      showBackend();
      writeUrl();
      const mine = generation;
      pending(true);
      try {
        await refreshCode(mine, controller ? controller.signal : undefined);
      } finally {
        if (mine === generation) pending(false);
      }
    };
  }
  $("copy").onclick = copy;
  $("download").onclick = download;
  $("theme").onclick = () => {
    const dark = document.documentElement.dataset.theme
      ? document.documentElement.dataset.theme === "dark"
      : matchMedia("(prefers-color-scheme: dark)").matches;
    theme(dark ? "light" : "dark");
  };
  refresh();
}

document.addEventListener("DOMContentLoaded", start);
