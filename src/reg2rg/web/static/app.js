// The reg2rg page: three views of a study, its region reports beside their masks, and ISRG-CT lesion mode.
// Plain JS against the server's JSON API (src/reg2rg/web/app.py); no build step.
"use strict";

const VIEWS = ["axial", "coronal", "sagittal"];
const VIEW_SIZE = 300; // px, the longer side of a view
const state = { config: null, study: null, slices: {}, window: "lung", highlight: null, mode: "regions", job: null, lesion: null, version: 0 };
const $ = (id) => document.getElementById(id);

async function api(method, url, body, contentType = "application/json") {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.body = contentType === "application/json" ? JSON.stringify(body) : body;
    options.headers["Content-Type"] = contentType;
  }
  const response = await fetch(url, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || `${response.status} ${response.statusText}`);
  return data;
}

function showError(error) {
  $("error").textContent = error ? String(error.message || error) : "";
  $("error").hidden = !error;
}

async function guarded(action) {
  try {
    showError(null);
    await action();
  } catch (error) {
    showError(error);
  }
}

// ---------------------------------------------------------------- opening a study

async function listStudies() {
  const listing = await api("GET", `/api/studies?path=${encodeURIComponent($("path").value)}`);
  const select = $("study");
  select.replaceChildren(...listing.studies.map((s) => new Option(`${s.study_id} (${s.split})`, JSON.stringify(s))));
}

async function openSelected() {
  if (!$("study").value) await listStudies();
  const chosen = JSON.parse($("study").value);
  showStudy(await api("POST", "/api/open", { path: $("path").value, ...chosen }));
}

async function uploadVolume(file) {
  const url = `/api/upload?name=${encodeURIComponent(file.name)}`;
  showStudy(await api("POST", url, file, "application/octet-stream"));
}

async function uploadMask(file) {
  const region = $("mask-region").value;
  const url = `/api/study/${state.study.key}/mask?region=${encodeURIComponent(region)}&name=${encodeURIComponent(file.name)}`;
  showStudy(await api("POST", url, file, "application/octet-stream"));
}

function showStudy(study) {
  if (state.job) api("POST", `/api/jobs/${state.job}/cancel`).catch(() => {}); // the old study's generation
  $("cancel").hidden = true;
  $("progress").hidden = true;
  $("job-state").textContent = "";
  state.study = study;
  state.slices = { ...study.slices };
  state.highlight = null;
  state.lesion = null;
  state.job = null;
  $("workspace").hidden = false;
  $("study-name").textContent = study.study_id;
  $("generate").disabled = !study.can_generate;
  $("add-mask").hidden = !study.uploaded;
  VIEWS.forEach(buildView);
  const references = referenceReports(study);
  const title = references.length ? "Reference region reports (from the data)" : study.regions.length ? "Region reports" : "No region masks: no region reports";
  showReports(references, title);
  showLesion({ points: [], voxels: 0, attributes: {}, report: "" });
  refresh();
}

function referenceReports(study) {
  return study.regions
    .filter((r) => study.reference[r.name])
    .map((r) => ({ region: r.name, colour: r.colour, header: r.name, body: study.reference[r.name], flagged: false }));
}

// ---------------------------------------------------------------- the three views

function buildView(view) {
  const geometry = state.study.views[view];
  const figure = document.querySelector(`.view[data-view=${view}]`);
  const scale = VIEW_SIZE / Math.max(geometry.cols * geometry.col_mm, geometry.rows * geometry.row_mm);
  const image = document.createElement("img");
  image.alt = `${view} slice`;
  image.width = Math.round(geometry.cols * geometry.col_mm * scale);
  image.height = Math.round(geometry.rows * geometry.row_mm * scale);
  image.addEventListener("click", (event) => guarded(() => clicked(view, image, event)));
  const slider = Object.assign(document.createElement("input"), { type: "range", min: 0, max: geometry.slices - 1 });
  slider.setAttribute("aria-label", `${view} slice`);
  slider.addEventListener("input", () => moveTo(view, Number(slider.value)));
  figure.addEventListener("wheel", (event) => {
    event.preventDefault();
    moveTo(view, state.slices[view] + Math.sign(event.deltaY));
  });
  const caption = document.createElement("figcaption");
  const edges = Object.entries(geometry.edges).map(([side, letter]) => {
    const label = Object.assign(document.createElement("span"), { className: `edge ${side}`, textContent: letter });
    return label;
  });
  figure.replaceChildren(image, caption, slider, ...edges);
}

function moveTo(view, index) {
  const last = state.study.views[view].slices - 1;
  state.slices[view] = Math.max(0, Math.min(last, index));
  refresh([view]);
}

function refresh(views = VIEWS) {
  state.version += 1;
  const query = new URLSearchParams({ window: state.window, regions: $("show-regions").checked, v: state.version });
  if (state.highlight) query.set("highlight", state.highlight);
  for (const view of views) {
    const figure = document.querySelector(`.view[data-view=${view}]`);
    const index = state.slices[view];
    figure.querySelector("img").src = `/api/study/${state.study.key}/slice/${view}/${index}.png?${query}`;
    figure.querySelector("input").value = index;
    figure.querySelector("figcaption").textContent = `${view} ${index + 1}/${state.study.views[view].slices}`;
  }
}

// The voxel's slice in every view, so that all three pass through it. voxel: RAS (x, y, z).
function centreOn(voxel) {
  state.slices = { sagittal: voxel[0], coronal: voxel[1], axial: voxel[2] };
}

async function clicked(view, image, event) {
  const geometry = state.study.views[view];
  const row = Math.min(geometry.rows - 1, Math.floor((event.offsetY / image.clientHeight) * geometry.rows));
  const col = Math.min(geometry.cols - 1, Math.floor((event.offsetX / image.clientWidth) * geometry.cols));
  const place = { view, index: state.slices[view], row, col };
  if (state.mode === "lesion") {
    const result = await api("POST", `/api/study/${state.study.key}/lesion/click`, { ...place, positive: !event.shiftKey });
    const voxel = result.points[result.points.length - 1].voxel;
    centreOn(voxel);
    showLesion(result);
    refresh();
    return;
  }
  const query = new URLSearchParams(place);
  const found = await api("GET", `/api/study/${state.study.key}/at?${query}`);
  highlight(found.regions[0] || null, true);
}

// ---------------------------------------------------------------- region reports

function showReports(reports, title) {
  $("reports-title").textContent = title;
  $("reports").replaceChildren(
    ...reports.map((report) => {
      const item = document.createElement("li");
      item.dataset.region = report.region || "";
      item.style.setProperty("--colour", report.colour);
      item.classList.toggle("flagged", report.flagged);
      const header = Object.assign(document.createElement("h3"), { textContent: report.header });
      const body = Object.assign(document.createElement("p"), { textContent: report.body });
      item.append(header, body);
      item.addEventListener("mouseenter", () => report.region && highlight(report.region, false));
      item.addEventListener("click", () => report.region && jumpTo(report.region));
      return item;
    })
  );
}

function highlight(region, scroll) {
  state.highlight = region;
  for (const item of $("reports").children) item.classList.toggle("highlight", item.dataset.region === region);
  const item = region && $("reports").querySelector(`li[data-region="${region}"]`);
  if (scroll && item) item.scrollIntoView({ block: "nearest", behavior: "smooth" });
  refresh();
}

function jumpTo(region) {
  const found = state.study.regions.find((r) => r.name === region);
  if (found) centreOn(found.centre);
  highlight(region, false);
}

async function generate() {
  const job = await api("POST", `/api/study/${state.study.key}/generate`);
  state.job = job.id;
  $("cancel").hidden = false;
  $("progress").hidden = false;
  $("generate").disabled = true;
  poll(job);
}

async function poll(job) {
  if (job.id !== state.job) return;
  $("progress").max = job.max_new_tokens;
  $("progress").value = job.tokens;
  $("job-state").textContent = job.state === "loading" ? "loading the model..." : `${job.state}: ${job.tokens} tokens`;
  if (["loading", "running"].includes(job.state)) {
    setTimeout(() => guarded(async () => poll(await api("GET", `/api/jobs/${job.id}`))), 400);
    return;
  }
  $("cancel").hidden = true;
  $("progress").hidden = true;
  $("generate").disabled = !state.study.can_generate;
  if (job.state === "done") {
    showReports(job.reports, `Generated region reports (${state.config.checkpoint}, ${job.seconds} s)`);
  } else if (job.state === "failed") {
    showError(new Error(`generation failed: ${job.error}`));
  }
}

// ---------------------------------------------------------------- lesion mode

function setMode(mode) {
  state.mode = mode;
  for (const button of document.querySelectorAll("#modes button")) button.classList.toggle("active", button.dataset.mode === mode);
  $("lesion-panel").hidden = mode !== "lesion"; // the region reports stay below it
  $("hint").textContent = mode === "lesion"
    ? "Click a lesion to add a point; shift-click to add a point outside it."
    : "Scroll over a view to move through its slices. Click a mask to find its report.";
}

function showLesion(result) {
  state.lesion = result;
  const positive = result.points.filter((p) => p.positive).length;
  $("lesion-summary").textContent = result.points.length
    ? `${positive} positive, ${result.points.length - positive} negative points; mask ${result.voxels} voxels (${result.volume_ml} ml)` +
      (result.seconds !== undefined ? `; answered in ${result.seconds} s` : "")
    : "No points yet.";
  const rows = Object.entries(result.attributes).map(([name, value]) => {
    const row = document.createElement("tr");
    const bars = document.createElement("td");
    for (const [label, p] of Object.entries(value.probabilities)) {
      const bar = Object.assign(document.createElement("div"), { className: label === value.label ? "bar top" : "bar" });
      const fill = Object.assign(document.createElement("span"), { className: "fill" });
      fill.style.width = `${Math.round(p * 100)}px`;
      bar.append(fill, `${label} ${(p * 100).toFixed(0)}%`);
      bars.append(bar);
    }
    row.append(Object.assign(document.createElement("th"), { textContent: name }), Object.assign(document.createElement("td"), { textContent: value.label }), bars);
    return row;
  });
  $("attributes").replaceChildren(...rows);
  $("lesion-report").textContent = result.report;
  const base = `/api/study/${state.study.key}/lesion`;
  for (const [id, file] of [["export-mask", "mask.nii.gz"], ["export-json", "report.json"], ["export-text", "report.txt"]]) {
    $(id).href = `${base}/${file}`;
    $(id).setAttribute("aria-disabled", String(!result.voxels));
  }
}

async function lesionAction(action) {
  showLesion(await api("POST", `/api/study/${state.study.key}/lesion/${action}`));
  refresh();
}

// ---------------------------------------------------------------- start

async function start() {
  state.config = await api("GET", "/api/config");
  $("path").value = state.config.data;
  $("windows").replaceChildren(
    ...state.config.windows.map((name) => {
      const button = Object.assign(document.createElement("button"), { type: "button", textContent: name });
      button.dataset.window = name;
      button.classList.toggle("active", name === state.window);
      button.addEventListener("click", () => {
        state.window = name;
        for (const b of $("windows").children) b.classList.toggle("active", b === button);
        refresh();
      });
      return button;
    })
  );
  $("lesion-mode").disabled = !state.config.lesion_mode;
  $("lesion-mode").title = state.config.lesion_mode ? "" : "start the server with isrg_checkpoint=... for lesion mode";
  $("mask-region").replaceChildren(...state.config.regions.map((r) => new Option(r, r)));
  $("open-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(openSelected);
  });
  $("list").addEventListener("click", () => guarded(listStudies));
  $("upload").addEventListener("change", () => $("upload").files[0] && guarded(() => uploadVolume($("upload").files[0])));
  $("mask-file").addEventListener("change", () => $("mask-file").files[0] && guarded(() => uploadMask($("mask-file").files[0])));
  $("show-regions").addEventListener("change", () => refresh());
  for (const button of document.querySelectorAll("#modes button")) button.addEventListener("click", () => setMode(button.dataset.mode));
  $("generate").addEventListener("click", () => guarded(generate));
  $("cancel").addEventListener("click", () => guarded(() => api("POST", `/api/jobs/${state.job}/cancel`)));
  $("undo").addEventListener("click", () => guarded(() => lesionAction("undo")));
  $("reset").addEventListener("click", () => guarded(() => lesionAction("reset")));
  if (state.config.data) await listStudies();
}

document.addEventListener("DOMContentLoaded", () => guarded(start));
