// The playground page: lists the server's ensembles, sends each dropped file to each chosen
// ensemble (one request per file and ensemble, one at a time), and shows each answer drawn.
// Plain browser APIs only (fetch, canvas, <meter>, <input type=range>): nothing is loaded from
// anywhere but this page's own server.
"use strict";

const RETRY_MS = 5000;
const LISTED_DETECTIONS = 20;

const state = {
  overview: null, // GET api/ensembles
  chosen: new Set(), // ensemble names whose checkbox is ticked
  files: [], // {id, file, url}
  panels: [], // one per file and chosen ensemble
  queue: [],
  busy: false,
  retryTimer: null,
  defaultsApplied: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

function ms(value) {
  return value === null || value === undefined ? "–" : `${value.toFixed(1)} ms`;
}

function percent(fraction) {
  if (fraction > 0 && fraction < 0.0001) return "<0.01%";
  return `${(100 * fraction).toFixed(fraction < 0.001 ? 2 : 1)}%`;
}

// -- the server and its ensembles -------------------------------------------------------------
function showBanner(text) {
  $("banner-text").textContent = text;
  $("banner").hidden = false;
  $("server-status").textContent = "no server";
}

function hideBanner() {
  $("banner").hidden = true;
}

function scheduleRetry() {
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(loadEnsembles, RETRY_MS);
}

async function loadEnsembles() {
  clearTimeout(state.retryTimer);
  let body;
  try {
    const response = await fetch("api/ensembles");
    body = await response.json();
  } catch (err) {
    showBanner(`This page's own server does not answer (${err.message}): is triton-vision ui still running?`);
    scheduleRetry();
    return;
  }
  if (body.defaults) applyDefaults(body.defaults);
  if (!body.ok) {
    showBanner(`${body.error} (asking again every ${RETRY_MS / 1000} s)`);
    if (!state.overview) $("ensembles").replaceChildren(el("li", { class: "muted", text: "none known: no server answers" }));
    scheduleRetry();
    return;
  }
  hideBanner();
  const first = state.overview === null;
  state.overview = body;
  $("server-status").textContent = `Triton at ${body.server.url} (${body.server.protocol})`;
  if (first) {
    for (const ensemble of body.ensembles) if (usable(ensemble)) state.chosen.add(ensemble.name);
  }
  renderEnsembles();
  syncPanels();
}

function usable(ensemble) {
  return ensemble.ready && ensemble.task !== null;
}

function ensembleNamed(name) {
  return (state.overview?.ensembles || []).find((e) => e.name === name);
}

function applyDefaults(defaults) {
  if (state.defaultsApplied) return;
  state.defaultsApplied = true;
  $("top-k").value = defaults.top_k;
  $("threshold").value = defaults.score_threshold;
  $("max-detections").value = defaults.max_detections;
  showControlValues();
}

function renderEnsembles() {
  const list = $("ensembles");
  list.replaceChildren();
  if (state.overview.ensembles.length === 0) {
    const advice = state.overview.advice ? `; ${state.overview.advice}` : "";
    list.append(el("li", { class: "muted", text: `The server has no ensemble of a task the UI knows${advice}.` }));
  }
  for (const ensemble of state.overview.ensembles) {
    const box = el("input", { type: "checkbox", checked: state.chosen.has(ensemble.name), disabled: !usable(ensemble) });
    box.addEventListener("change", () => {
      if (box.checked) state.chosen.add(ensemble.name);
      else state.chosen.delete(ensemble.name);
      syncPanels();
    });
    const details = [
      el("span", { class: `task ${ensemble.task || "unknown"}`, text: ensemble.task || "task unknown" }),
      el("span", { class: ensemble.ready ? "ready" : "not-ready", text: ensemble.ready ? "ready" : "not ready" }),
    ];
    if (ensemble.max_batch_size) details.push(el("span", { class: "muted", text: `${ensemble.max_batch_size} ${ensemble.max_batch_size === 1 ? "image" : "images"}/request` }));
    const item = el("li", { "data-ensemble": ensemble.name }, el("label", {}, box, el("strong", { text: ensemble.name })), ...details);
    if (ensemble.stand_in.length) {
      item.append(el("p", { class: "warning", text: `${ensemble.stand_in.join(", ")}: stand-in with random weights, its answers are meaningless` }));
    }
    list.append(item);
  }
  const limits = [...new Set(state.overview.ensembles.filter(usable).map((e) => e.max_bytes))];
  $("limit").textContent = limits.length
    ? `Files above ${Math.min(...limits).toLocaleString()} bytes are refused here, before they are sent (the server's image guard limit).`
    : "";
}

// -- files and panels ----------------------------------------------------------------------------
function setFiles(fileList) {
  for (const entry of state.files) URL.revokeObjectURL(entry.url);
  state.files = [...fileList].map((file, id) => ({ id, file, url: URL.createObjectURL(file) }));
  state.panels = [];
  state.queue = [];
  $("results").replaceChildren();
  for (const entry of state.files) {
    const card = el(
      "article",
      { class: "file", "data-file": entry.file.name },
      el("h3", { text: `${entry.file.name} ` }, el("span", { class: "muted", text: `${entry.file.size.toLocaleString()} bytes` })),
      el("div", { class: "panels" }),
    );
    entry.card = card;
    $("results").append(card);
  }
  syncPanels();
}

function syncPanels() {
  if (!state.overview) return;
  const order = state.overview.ensembles.map((e) => e.name).filter((name) => state.chosen.has(name));
  state.panels = state.panels.filter((panel) => {
    if (state.chosen.has(panel.ensemble.name)) return true;
    panel.node.remove();
    return false;
  });
  for (const entry of state.files) {
    const container = entry.card.querySelector(".panels");
    for (const name of order) {
      if (state.panels.some((p) => p.entry === entry && p.ensemble.name === name)) continue;
      const ensemble = ensembleNamed(name);
      const panel = { entry, ensemble, token: 0, answer: null };
      panel.node = el(
        "div",
        { class: "panel", "data-ensemble": name, "data-task": ensemble.task, "data-state": "pending" },
        el("h4", { text: `${name} ` }, el("span", { class: `task ${ensemble.task}`, text: ensemble.task })),
        el("div", { class: "body" }),
        el("div", { class: "timing" }),
      );
      container.append(panel.node);
      state.panels.push(panel);
      ask(panel);
    }
    // Keep the ensembles' order of the list.
    for (const name of order) {
      const panel = state.panels.find((p) => p.entry === entry && p.ensemble.name === name);
      container.append(panel.node);
    }
  }
}

function setPanel(panel, stateName, ...children) {
  panel.node.dataset.state = stateName;
  panel.node.querySelector(".body").replaceChildren(...children);
  if (stateName !== "done") panel.node.querySelector(".timing").replaceChildren();
}

function ask(panel) {
  panel.token += 1;
  const { file } = panel.entry;
  if (file.size > panel.ensemble.max_bytes) {
    setPanel(
      panel,
      "error",
      el("p", {
        class: "error",
        text: `${file.size} bytes is above the limit of ${panel.ensemble.max_bytes} bytes (${panel.ensemble.limit_source}): not sent`,
      }),
    );
    return;
  }
  setPanel(panel, "pending", el("p", { class: "muted", text: "waiting for the server ..." }));
  state.queue.push({ panel, token: panel.token });
  drain();
}

// The tasks whose answers are detections (instances and keypoints drawn on the photo by the server).
const DETECTION_TASKS = ["detection", "instance-segmentation", "keypoints"];
// The tasks drawn as boxes on the photo: those, and pipelines (each box with its object's answer).
const DRAWN_TASKS = [...DETECTION_TASKS, "pipeline"];

function parametersFor(task) {
  const query = new URLSearchParams();
  if (task === "classification" || task === "pipeline") query.set("top_k", $("top-k").value);
  if (DRAWN_TASKS.includes(task)) query.set("score_threshold", $("threshold").value);
  if (DETECTION_TASKS.includes(task)) query.set("max_detections", $("max-detections").value);
  return query;
}

async function drain() {
  if (state.busy) return;
  state.busy = true;
  try {
    while (state.queue.length) {
      const { panel, token } = state.queue.shift();
      if (panel.token !== token || !state.panels.includes(panel)) continue; // asked again since, or removed
      const query = parametersFor(panel.ensemble.task);
      query.set("ensemble", panel.ensemble.name);
      let body;
      try {
        const response = await fetch(`api/infer?${query}`, {
          method: "POST",
          headers: { "Content-Type": "application/octet-stream" },
          body: panel.entry.file,
        });
        body = await response.json();
      } catch (err) {
        body = { ok: false, error: `no answer from this page's server (${err.message})` };
      }
      if (panel.token !== token) continue;
      if (body.ok) await showAnswer(panel, body);
      else {
        setPanel(panel, "error", el("p", { class: "error", text: body.error }));
        if (body.kind === "unreachable") {
          showBanner(body.error);
          scheduleRetry();
        }
      }
    }
  } finally {
    state.busy = false;
  }
}

// -- answers ------------------------------------------------------------------------------------
async function showAnswer(panel, answer) {
  panel.answer = answer;
  const parts = [];
  if (answer.stand_in.length) {
    parts.push(el("p", { class: "warning", text: `stand-in with random weights (${answer.stand_in.join(", ")}): meaningless answers` }));
  }
  if (answer.task === "classification") parts.push(classificationView(answer));
  else if (DRAWN_TASKS.includes(answer.task)) parts.push(...detectionView(answer));
  else if (answer.task === "embedding") parts.push(embeddingView(answer));
  else parts.push(...(await segmentationView(panel, answer)));
  setPanel(panel, "done", ...parts);
  panel.node.querySelector(".timing").replaceChildren(...timingView(answer));
}

function classificationView(answer) {
  const list = el("ol", { class: "top-k" });
  for (const row of answer.labels) {
    list.append(
      el(
        "li",
        { "data-label": row.label, "data-class-id": row.class_id },
        el("span", { class: "label", text: row.label }),
        el("meter", { min: 0, max: 1, value: row.score, title: `class ${row.class_id}` }),
        el("span", { class: "score", text: percent(row.score) }),
      ),
    );
  }
  return list;
}

function embeddingView(answer) {
  const shown = answer.values.map((v) => v.toFixed(4)).join(", ");
  const more = answer.dim > answer.values.length ? ", ..." : "";
  return el("p", { class: "embedding", text: `${answer.dim}-d embedding, norm ${answer.norm.toFixed(4)}: [${shown}${more}]` });
}

function detectionView(answer) {
  const count = answer.detections.length;
  const threshold = answer.parameters.score_threshold;
  const summary = el("p", {
    class: "summary",
    "data-count": count,
    text: `${count} ${answer.task === "pipeline" ? "object" : "detection"}${count === 1 ? "" : "s"}${threshold === undefined ? "" : ` with score ≥ ${threshold.toFixed(2)}`}`,
  });
  const picture = el("img", { class: "drawn", src: answer.drawn, alt: `the photo with ${count} boxes drawn` });
  const list = el("ul", { class: "detections" });
  for (const row of answer.detections.slice(0, LISTED_DETECTIONS)) {
    list.append(
      el(
        "li",
        { "data-label": row.label },
        el("span", { class: "swatch", style: `background:${row.colour}` }),
        el("span", { class: "label", text: row.label }),
        el("span", { class: "score", text: row.score.toFixed(2) }),
        el("span", { class: "muted", text: `[${row.box.join(", ")}]` }),
        ...(row.answer ? [el("span", { class: "answer", text: `→ ${row.answer.label} ${percent(row.answer.score)}` })] : []),
        ...(row.pixels === undefined ? [] : [el("span", { class: "muted", text: `${row.pixels} px` })]),
        ...(row.keypoints === undefined ? [] : [el("span", { class: "muted", text: `${row.keypoints_seen}/${row.keypoints} keypoints` })]),
      ),
    );
  }
  if (count > LISTED_DETECTIONS) list.append(el("li", { class: "muted", text: `... and ${count - LISTED_DETECTIONS} more (all drawn)` }));
  return [summary, picture, list];
}

function loadImage(src) {
  const image = new Image();
  image.src = src;
  return image.decode().then(() => image);
}

function drawBlend(panel) {
  const { canvas, photo, mask } = panel;
  if (!canvas) return;
  const context = canvas.getContext("2d");
  context.globalAlpha = 1;
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.drawImage(photo, 0, 0, canvas.width, canvas.height);
  context.globalAlpha = Number($("opacity").value);
  context.drawImage(mask, 0, 0, canvas.width, canvas.height);
  canvas.dataset.opacity = $("opacity").value;
}

async function segmentationView(panel, answer) {
  const canvas = el("canvas", { class: "blend", width: answer.width, height: answer.height });
  const legend = el("ul", { class: "legend" });
  for (const row of answer.legend) {
    legend.append(
      el(
        "li",
        { "data-label": row.label, "data-class-id": row.class_id, "data-fraction": row.fraction },
        el("span", { class: row.drawn ? "swatch" : "swatch clear", style: row.drawn ? `background:${row.colour}` : "" }),
        el("span", { class: "label", text: row.drawn ? row.label : `${row.label} (left clear)` }),
        el("span", { class: "score", text: percent(row.fraction) }),
      ),
    );
  }
  try {
    [panel.photo, panel.mask] = await Promise.all([loadImage(panel.entry.url), loadImage(answer.mask)]);
    panel.canvas = canvas;
    drawBlend(panel);
  } catch (err) {
    return [el("p", { class: "error", text: `the browser cannot draw this photo (${err.message})` }), legend];
  }
  return [canvas, legend];
}

function timingView(answer) {
  const timing = answer.timing;
  const line = el("p", {
    class: "latency",
    text: `${ms(answer.latency_ms)} round trip from this page's server to Triton${timing.server_ms ? `; ${ms(timing.server_ms)} in Triton` : ""}`,
  });
  const parts = [line];
  if (timing.steps.length) {
    const table = el(
      "table",
      { class: "steps" },
      el("caption", { text: "where the time went, in ms" }),
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          ...[
            ["step", "the ensemble's steps, in order"],
            ["n", "requests the step counted meanwhile (1: this one only)"],
            ["Triton", "the step's time in Triton, queue included (ms)"],
            ["queue", "waiting for an instance (ms)"],
            ["compute", "input, inference and output (ms)"],
          ].map(([text, title]) => el("th", { text, title })),
        ),
      ),
    );
    const rows = el("tbody");
    for (const step of timing.steps) {
      rows.append(
        el(
          "tr",
          { "data-model": step.model },
          el("td", { text: step.model }),
          el("td", { text: String(step.requests) }),
          el("td", { text: step.total_ms.toFixed(1) }),
          el("td", { text: step.queue_ms.toFixed(1) }),
          el("td", { text: step.compute_ms.toFixed(1) }),
        ),
      );
    }
    table.append(rows);
    parts.push(table);
  }
  parts.push(el("p", { class: timing.approximate ? "note warning" : "note muted", text: timing.note }));
  return parts;
}

// -- controls -------------------------------------------------------------------------------------
function showControlValues() {
  $("threshold-value").textContent = Number($("threshold").value).toFixed(2);
  $("opacity-value").textContent = Number($("opacity").value).toFixed(2);
}

function askAgain(...tasks) {
  for (const panel of state.panels) if (tasks.includes(panel.ensemble.task)) ask(panel);
}

function wire() {
  $("threshold").addEventListener("input", showControlValues);
  $("threshold").addEventListener("change", () => askAgain(...DRAWN_TASKS));
  $("max-detections").addEventListener("change", () => askAgain(...DETECTION_TASKS));
  $("top-k").addEventListener("change", () => askAgain("classification", "pipeline"));
  $("opacity").addEventListener("input", () => {
    showControlValues();
    for (const panel of state.panels) drawBlend(panel);
  });
  $("files").addEventListener("change", (event) => setFiles(event.target.files));
  $("retry").addEventListener("click", loadEnsembles);
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    setFiles(event.dataTransfer.files);
  });
  // A file dropped beside the zone must not replace the page.
  for (const name of ["dragover", "drop"]) window.addEventListener(name, (event) => event.preventDefault());
  showControlValues();
}

wire();
loadEnsembles();
