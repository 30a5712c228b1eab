// The deeptag search page: plain ES module, no framework, no build step, nothing from a CDN.
// It speaks the same HTTP API as curl: GET/POST /search, POST /index, GET /info, GET /duplicates.

import {
  SCORED_QUERY,
  blurPicture,
  isSensitive,
  textDetails,
  unsafeFilter,
} from "./analyses.js";
import { duplicatesView } from "./duplicates.js";
import {
  FACET_PARAM,
  SORTS,
  filterClauses,
  narrowed,
  photoLine,
  renderFacets,
  thumbnailLink,
} from "./library.js";

const PAGE = 24; // results per request
const MAX_K = 1000; // the server's limit on k
const BATCH = 4; // files per POST /index
const BATCH_BYTES = 12 * 1024 * 1024; // ...or fewer, when the files are large
const KEY_STORE = "deeptag.apiKey";
const NSFW_THRESHOLD = 0.8; // the server's default, until GET /info says

const $ = (id) => document.getElementById(id);
const el = {
  form: $("search-form"),
  q: $("q"),
  exampleFile: $("example-file"),
  addFiles: $("add-files"),
  keyForm: $("key-form"),
  keyInput: $("api-key"),
  keyHint: $("key-hint"),
  error: $("error"),
  errorText: $("error-text"),
  summary: $("summary"),
  clear: $("clear"),
  results: $("results"),
  empty: $("empty"),
  more: $("more"),
  upload: $("upload"),
  uploadProgress: $("upload-progress"),
  uploadCount: $("upload-count"),
  uploadSummary: $("upload-summary"),
  uploadTotals: $("upload-totals"),
  uploadFailures: $("upload-failures"),
  drop: $("drop"),
  forgetKey: $("forget-key"),
  modelFilter: $("model-filter"),
  sort: $("sort"),
  facets: $("facets"),
  safeToggle: $("safe-toggle"),
  hideUnsafe: $("hide-unsafe"),
};

/** What the page shows: a query string, or the images most like an example. */
const view = {
  mode: "query", // "query" | "like"
  q: "*",
  like: null, // an indexed image's id, an http(s) URL or a data: URI
  likeLabel: "", // how the summary names the example
  likePreview: null, // an image URL for the summary
  k: PAGE,
  hits: [],
  total: 0,
  done: true,
  filters: [], // chosen facet values: [{name: "year", value: "2019"}]
  sort: "", // "" (relevance), "taken_at" or "-taken_at"
};
let generation = 0; // drops answers to searches that were superseded
let busy = false;

/**
 * Safety scores (`deeptag index --safety`): images above the threshold are blurred, and
 * "Hide unsafe" (shown once the index holds any score) leaves them out of the answers.
 */
const safety = {
  threshold: NSFW_THRESHOLD,
  scored: false, // whether any indexed image has a score
  known: null, // the request finding both out, shared by the searches waiting for it
};
let infoRequest = null; // the latest GET /info

// --- API ------------------------------------------------------------------------------------

function readKey() {
  try {
    return localStorage.getItem(KEY_STORE) || "";
  } catch {
    return "";
  }
}

let apiKey = readKey();
// When the cookie POST /session set for this page's images runs out (ms since the epoch), and
// the request renewing it, so that many images failing at once renew it once.
let sessionUntil = 0;
let sessionRenewal = null;

class ApiError extends Error {}
class KeyNeeded extends ApiError {}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const usedKey = apiKey;
  if (usedKey) headers.Authorization = `Bearer ${usedKey}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(`Cannot reach the deeptag server (${error.message}).`);
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (response.status === 401) {
    // An answer to a key the user has since replaced says nothing about the new one.
    if (usedKey === apiKey) askForKey(Boolean(usedKey));
    throw new KeyNeeded(payload?.status?.dd_msg || "This server needs an API key.");
  }
  if (!response.ok) {
    const message = payload?.status?.dd_msg || payload?.status?.msg || response.statusText;
    throw new ApiError(`${message} (HTTP ${response.status})`);
  }
  if (payload === null) throw new ApiError(`The server sent no JSON (HTTP ${response.status}).`);
  return payload;
}

/**
 * <img> and <a> send no headers, and a key in their URLs would land in access logs and the
 * history: the key is sent once, as a header, and the server answers with an HttpOnly cookie
 * that only opens the image routes. It is renewed when half its life is gone.
 */
async function ensureSession({ renew = false } = {}) {
  if (!apiKey) return;
  if (!renew && Date.now() < sessionUntil) return;
  if (!sessionRenewal) {
    sessionRenewal = api("session", { method: "POST" })
      .then((answer) => {
        const seconds = answer?.body?.expires_in_s;
        sessionUntil = answer?.body?.session ? Date.now() + seconds * 500 : Infinity;
      })
      .finally(() => {
        sessionRenewal = null;
      });
  }
  await sessionRenewal;
}

/** A URL of this server, relative so the page also works under a path prefix. */
function local(path) {
  return `.${path}`;
}

/** Thumbnails come from this server, which reads (or fetches) and checks each image. */
function thumbnailUrl(hit) {
  const url = hit.thumbnail || "";
  return url.startsWith("/") ? local(url) : url;
}

/** The indexed image itself, as it was indexed. */
function imageUrl(hit) {
  return local(`/images/${hit.id}`);
}

/** Why an image is not shown: the server says it in the thumbnail's error answer. */
async function unavailable(url) {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const payload = await response.json();
    return {
      status: response.status,
      reason: payload?.status?.dd_msg || `HTTP ${response.status}`,
    };
  } catch {
    return { status: 0, reason: "" };
  }
}

// --- Messages ---------------------------------------------------------------------------------

function showError(error) {
  if (error instanceof KeyNeeded) return; // the key form says it
  el.errorText.textContent = error instanceof ApiError ? error.message : String(error);
  el.error.hidden = false;
}

function clearError() {
  el.error.hidden = true;
  el.errorText.textContent = "";
}

function askForKey(rejected) {
  el.keyForm.hidden = false;
  el.keyHint.textContent = rejected
    ? "That key was not accepted. Enter the server's DEEPTAG_API_KEY."
    : "Enter the server's DEEPTAG_API_KEY. It is kept in this browser only (localStorage), " +
      "sent as 'Authorization: Bearer' and never put in a URL.";
  el.keyInput.focus();
}

// --- Formatting (pure) ------------------------------------------------------------------------

/** "n07920052 espresso" -> "espresso"; "n02123045 tabby, tabby cat" -> "tabby, tabby cat". */
export function labelWords(category) {
  return String(category).replace(/^n\d{8}\s+/, "");
}

export function shortLabel(category) {
  return labelWords(category).split(",")[0].trim();
}

export function percent(score) {
  const value = Number(score) * 100;
  if (value > 0 && value < 1) return "<1%";
  return `${Math.round(value)}%`;
}

/** What a card calls an image: the file name, the URL's last segment, or its host. */
export function displayName(uri, id = "") {
  const text = String(uri || "");
  let name = text;
  if (/^https?:\/\//i.test(text)) {
    try {
      const url = new URL(text);
      const tail = url.pathname.split("/").filter(Boolean).pop() || "";
      try {
        name = decodeURIComponent(tail) || url.hostname;
      } catch {
        name = tail;
      }
    } catch {
      name = text;
    }
  } else {
    name = text.split(/[\\/]/).filter(Boolean).pop() || text;
  }
  // Images added through the page are kept under their SHA-256: no name worth showing.
  if (id && name.startsWith(`${id}.`)) return "Uploaded image";
  return name;
}

function plural(n, word) {
  return `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
}

function duration(ms) {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

// --- Rendering ------------------------------------------------------------------------------

/** A list of search chips, labelled for screen readers. */
function chipList(className, label, chips) {
  const list = document.createElement("ul");
  list.className = className;
  list.setAttribute("aria-label", label);
  list.append(...chips);
  return list;
}

/** One chip (a list item) that searches for `query` when clicked. */
function searchChip(className, title, query, ...content) {
  const li = document.createElement("li");
  const chip = document.createElement("button");
  chip.type = "button";
  chip.className = className;
  chip.title = title;
  chip.append(...content);
  chip.addEventListener("click", () => searchQuery(query));
  li.append(chip);
  return li;
}

function card(hit) {
  const item = document.createElement("li");
  item.className = "card";
  item.dataset.id = hit.id;

  const labels = (hit.categories || []).map((c) => shortLabel(c.category));
  const full = imageUrl(hit);
  // The picture opens the full image too; the name below is the link for keyboards and readers.
  const alt = labels.length ? labels.slice(0, 3).join(", ") : "an indexed image";
  const { frame, img } = thumbnailLink(full, alt, hit.width, hit.height);
  img.src = thumbnailUrl(hit);
  let renewed = false;
  img.addEventListener("error", async () => {
    const { status, reason: why } = await unavailable(img.src);
    if (status === 401 && apiKey && !renewed) {
      // The image cookie ran out (a page left open overnight): renew it and try once more.
      renewed = true;
      try {
        await ensureSession({ renew: true });
        img.src = thumbnailUrl(hit);
        return;
      } catch {
        // The key form is shown; the placeholder below says why the image is missing.
      }
    }
    frame.classList.add("broken");
    const placeholder = document.createElement("span");
    placeholder.className = "unavailable";
    const title = document.createElement("strong");
    title.textContent = "Image unavailable";
    const reason = document.createElement("span");
    reason.className = "reason";
    placeholder.append(title, reason);
    frame.append(placeholder);
    reason.textContent = why;
    frame.title = why;
  });
  frame.append(img);
  item.append(frame);
  // Images scored above the threshold stay blurred until clicked (one at a time).
  const hidden = isSensitive(hit, safety.threshold)
    ? blurPicture(item, frame, () => name.focus())
    : () => false;

  const body = document.createElement("div");
  body.className = "card-body";
  const name = document.createElement("a");
  name.className = "name";
  name.href = full;
  name.target = "_blank";
  name.rel = "noopener";
  name.textContent = displayName(hit.uri, hit.id);
  name.title = `${hit.uri || name.textContent}: open the full image`;
  body.append(name);
  const when = photoLine(hit);
  if (when) body.append(when);
  // The text read in the image, collapsed; the words searched for marked.
  const text = textDetails(hit, view.mode === "query" ? view.q : "");
  if (text) body.append(text);
  body.append(
    chipList(
      "cats",
      "Top categories",
      (hit.categories || []).slice(0, 3).map((c) => {
        const words = document.createElement("span");
        words.className = "words";
        words.textContent = shortLabel(c.category);
        const score = document.createElement("span");
        score.className = "pct";
        score.textContent = percent(c.score);
        const title = `${labelWords(c.category)}: search for it`;
        return searchChip("chip", title, `"${shortLabel(c.category)}"`, words, " ", score);
      }),
    ),
  );
  // WordNet concepts above the labels ("cat", "vehicle"): searchable words of their own.
  const concepts = (hit.concepts || []).slice(0, 4);
  if (concepts.length) {
    const chips = concepts.map((c) =>
      searchChip(
        "concept",
        `${c.concept} (${percent(c.score)}): search for it`,
        `"${c.concept}"`,
        c.concept,
      ),
    );
    body.append(chipList("concepts", "Concepts", chips));
  }
  // Categories of trained models (`deeptag index --model NAME`), apart from ImageNet's.
  const custom = (hit.custom || []).slice(0, 4);
  if (custom.length) {
    const chips = custom.map((c) =>
      searchChip(
        "concept custom",
        `${c.category} (${c.model}, ${percent(c.score)}): search for it`,
        `custom.category:"${c.category}"`,
        c.category,
      ),
    );
    body.append(chipList("concepts customs", "Trained model categories", chips));
  }

  const footer = document.createElement("div");
  footer.className = "card-foot";
  const like = document.createElement("button");
  like.type = "button";
  like.className = "more-like";
  like.textContent = "More like this";
  like.setAttribute("aria-label", `More like this: ${img.alt}`);
  like.addEventListener("click", () => {
    // A picture still blurred is not shown unblurred in the summary either.
    searchLike(hit.id, "this image", hidden() ? null : thumbnailUrl(hit));
  });
  footer.append(like);
  if (view.mode === "like") {
    const similarity = document.createElement("span");
    similarity.className = "similarity";
    similarity.textContent = `${percent(hit.score)} similar`;
    footer.append(similarity);
  } else if (hit.matched && hit.matched.length) {
    // Why it matched, and how sure deeptag is (0-1, the same scale for every query).
    const why = document.createElement("span");
    why.className = "similarity matched";
    why.textContent = `${percent(hit.score)} · ${hit.matched.join(", ")}`;
    why.title = "How sure deeptag is that this image is what you asked for, and what matched";
    footer.append(why);
  }
  body.append(footer);
  item.append(body);
  return item;
}

function renderSummary(page) {
  el.summary.replaceChildren();
  const count = document.createElement("strong");
  if (view.mode === "like") {
    count.textContent = plural(view.hits.length, "image");
    el.summary.append(count, " like ");
    if (view.likePreview) {
      const preview = document.createElement("img");
      preview.className = "example";
      preview.src = view.likePreview;
      preview.alt = view.likeLabel;
      el.summary.append(preview, " ");
    }
    el.summary.append(view.likeLabel);
  } else if (view.q === "*") {
    count.textContent = plural(view.total, "image");
    el.summary.append(count, " indexed");
  } else {
    count.textContent = plural(view.total, "image");
    el.summary.append(count, ` match “${view.q}”`);
  }
  const took = document.createElement("span");
  took.className = "took";
  took.textContent = ` · ${duration(page.took_ms)}`;
  el.summary.append(took);
  if (page.notice) {
    // E.g. images indexed before semantic search: found by words only until re-indexed.
    const notice = document.createElement("small");
    notice.className = "notice";
    notice.textContent = page.notice;
    el.summary.append(notice);
  }
}

function renderEmpty() {
  const empty = view.hits.length === 0;
  el.empty.hidden = !empty;
  if (!empty) return;
  if (view.mode === "like") {
    el.empty.textContent = "No similar images found.";
  } else if (view.q === "*") {
    el.empty.textContent = "No images are indexed yet. Use “Add images”, or drop files here.";
  } else {
    el.empty.textContent = `No images match “${view.q}”. Try fewer words, or another label.`;
  }
}

function setBusy(value) {
  busy = value;
  el.results.setAttribute("aria-busy", String(value));
  el.more.disabled = value;
  document.body.classList.toggle("busy", value);
}

// --- Searching ------------------------------------------------------------------------------

async function run(append = false) {
  const mine = ++generation;
  if (!append) duplicates.close();
  clearError();
  setBusy(true);
  if (!append) el.summary.textContent = "Searching…";
  try {
    await Promise.all([ensureSession(), safetyKnown()]);
    if (mine !== generation) return;
    const filter = safetyFilter();
    let page;
    let fresh;
    if (view.mode === "like") {
      const k = append ? Math.min(view.k + PAGE, MAX_K) : PAGE;
      const body = { like: view.like, k };
      if (filter) body.filter = filter;
      page = await api("search", { method: "POST", body });
      if (mine !== generation) return;
      view.k = k;
      fresh = append ? page.hits.slice(view.hits.length) : page.hits;
      view.done = page.hits.length < k || k >= MAX_K;
    } else {
      const from = append ? view.hits.length : 0;
      // Hybrid: the words as typed and their meaning, fused by the server.
      const params = new URLSearchParams({
        q: filtered(view.q),
        size: String(PAGE),
        from: String(from),
        mode: "hybrid",
        facets: FACET_PARAM,
      });
      if (view.sort) params.set("sort", view.sort);
      if (filter) params.set("filter", filter);
      page = await api(`search?${params}`);
      if (mine !== generation) return;
      fresh = page.hits;
      view.done = from + page.hits.length >= page.total || page.hits.length === 0;
    }
    view.total = page.total;
    if (!append) {
      view.hits = [];
      el.results.replaceChildren();
      window.scrollTo({ top: 0 });
    }
    view.hits.push(...fresh);
    // A score the start-up check missed (images added since) still shows the switch.
    if (fresh.some((hit) => typeof hit.nsfw === "number")) showSafety(true);
    el.results.append(...fresh.map(card));
    if (view.mode === "like") el.facets.hidden = true;
    else if (!append) renderFacets(el.facets, page.facets, view.filters, toggleFilter);
    renderSummary(page);
    renderEmpty();
    el.more.hidden = view.done;
  } catch (error) {
    if (mine !== generation) return;
    if (!append) {
      el.summary.textContent = "";
      el.results.replaceChildren();
      view.hits = [];
      el.empty.hidden = true;
      el.more.hidden = true;
    }
    showError(error);
  } finally {
    if (mine === generation) setBusy(false);
  }
}

/** The query limited by the chosen facet values and trained model, if any. */
function filtered(q) {
  const model = el.modelFilter.value;
  const clauses = [model ? `custom.model:${model}` : "", filterClauses(view.filters)]
    .filter(Boolean)
    .join(" AND ");
  return narrowed(q, clauses);
}

/**
 * Whether the index holds safety scores, and the threshold: asked once before the first
 * search (again after a failure or after adding images), so "Hide unsafe" applies to the
 * first page and its total already. Never fails: without an answer nothing is hidden.
 */
function safetyKnown() {
  if (!safety.known) {
    const scored = new URLSearchParams({ q: SCORED_QUERY, size: "1", mode: "words" });
    safety.known = Promise.all([infoRequest || api("info"), api(`search?${scored}`)])
      .then(([info, probe]) => {
        const threshold = Number(info?.head?.safety?.nsfw_threshold);
        if (Number.isFinite(threshold)) safety.threshold = threshold;
        showSafety(probe.total > 0);
      })
      .catch(() => {
        // Asked again with the next search, /info too (it may have failed for the same reason).
        safety.known = null;
        infoRequest = null;
      });
  }
  return safety.known;
}

function showSafety(scored) {
  safety.scored = scored;
  el.safeToggle.hidden = !scored;
}

/** The ``filter`` of a search: images above the threshold left out, while asked to. */
function safetyFilter() {
  return safety.scored && el.hideUnsafe.checked ? unsafeFilter(safety.threshold) : "";
}

/** A facet chip was pressed: add its value to the filters, or take it off. */
function toggleFilter(name, value) {
  const before = view.filters.length;
  view.filters = view.filters.filter((f) => !(f.name === name && f.value === value));
  if (view.filters.length === before) view.filters.push({ name, value });
  updateClear();
  return run(false);
}

function pushHistory(params) {
  const next = params.toString();
  if (next !== location.search.replace(/^\?/, "")) {
    history.pushState(null, "", next ? `?${next}` : location.pathname);
  }
}

function updateClear() {
  el.clear.hidden = view.mode === "query" && view.q === "*" && !view.filters.length;
}

function searchQuery(q, { record = true } = {}) {
  const text = (q || "").trim() || "*";
  if (/^https?:\/\/\S+$/i.test(text) || /^data:image\//i.test(text)) {
    return searchLike(text, "this image", text, { record });
  }
  Object.assign(view, { mode: "query", q: text, like: null, likePreview: null, filters: [] });
  el.q.value = text === "*" ? "" : text;
  if (record) pushHistory(text === "*" ? new URLSearchParams() : new URLSearchParams({ q: text }));
  updateClear();
  return run(false);
}

function searchLike(like, label, preview, { record = true } = {}) {
  Object.assign(view, { mode: "like", q: "*", like, likeLabel: label, likePreview: preview });
  if (!like.startsWith("data:")) el.q.value = "";
  // Data URIs are too long for the address bar; ids and URLs are shareable.
  if (record && !like.startsWith("data:")) pushHistory(new URLSearchParams({ like }));
  updateClear();
  return run(false);
}

function fromLocation() {
  const params = new URLSearchParams(location.search);
  if (params.get("view") === "duplicates") return showDuplicates({ record: false });
  const like = params.get("like");
  if (like) {
    const preview = /^[0-9a-f]{64}$/.test(like)
      ? thumbnailUrl({ thumbnail: `/thumbnails/${like}` })
      : like;
    const label = /^[0-9a-f]{64}$/.test(like) ? "this image" : like;
    return searchLike(like, label, preview, { record: false });
  }
  return searchQuery(params.get("q") || "*", { record: false });
}

function readDataUri(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(new ApiError(`${file.name}: cannot read the file`));
    reader.readAsDataURL(file);
  });
}

async function searchByFile(file) {
  if (!file) return;
  clearError();
  let uri;
  try {
    uri = await readDataUri(file);
  } catch (error) {
    showError(error);
    return;
  }
  await searchLike(uri, file.name, URL.createObjectURL(file));
}

// --- Duplicates (duplicates.js): shown in place of the results ---------------------------------

const duplicates = duplicatesView({
  api,
  ensureSession,
  showError,
  clearError,
  thumbnail: (id) => thumbnailUrl({ thumbnail: `/thumbnails/${id}` }),
  image: (id) => imageUrl({ id }),
});

function showDuplicates({ record = true } = {}) {
  generation += 1; // a search still under way is dropped
  setBusy(false);
  if (record) pushHistory(new URLSearchParams({ view: "duplicates" }));
  return duplicates.open();
}

// --- Adding images ----------------------------------------------------------------------------

function batches(files) {
  const out = [];
  let current = [];
  let bytes = 0;
  for (const file of files) {
    if (current.length && (current.length >= BATCH || bytes + file.size > BATCH_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(file);
    bytes += file.size;
  }
  if (current.length) out.push(current);
  return out;
}

async function addFiles(fileList) {
  const files = [...fileList];
  if (!files.length) return;
  clearError();
  const totals = { indexed: 0, skipped: 0, failed: [] };
  el.upload.hidden = false;
  el.uploadSummary.hidden = true;
  el.uploadFailures.replaceChildren();
  el.uploadProgress.max = files.length;
  el.uploadProgress.value = 0;
  let done = 0;
  const progress = () => {
    el.uploadProgress.value = done;
    el.uploadCount.textContent = `${done} of ${plural(files.length, "file")} processed`;
  };
  progress();
  let stopped = null;
  for (const batch of batches(files)) {
    try {
      const data = await Promise.all(batch.map(readDataUri));
      const answer = await api("index", { method: "POST", body: { data } });
      totals.indexed += answer.indexed;
      totals.skipped += answer.skipped;
      for (const failure of answer.failed || []) {
        // Base64 items are named by their position in the request, as DeepDetect does.
        const position = /^\d+$/.test(failure.uri) ? Number(failure.uri) : -1;
        const name = batch[position]?.name ?? failure.uri;
        totals.failed.push({ name, error: failure.error });
      }
    } catch (error) {
      if (error instanceof KeyNeeded) {
        stopped = "Stopped: the server needs an API key. Enter it above and add the rest again.";
        break;
      }
      for (const file of batch) totals.failed.push({ name: file.name, error: error.message });
    }
    done += batch.length;
    progress();
  }
  const parts = [
    `Indexed ${totals.indexed}`,
    `skipped ${totals.skipped} (already indexed)`,
    `failed ${totals.failed.length}`,
  ];
  el.uploadTotals.textContent = `${parts.join(" · ")}.${stopped ? ` ${stopped}` : ""}`;
  for (const failure of totals.failed) {
    const li = document.createElement("li");
    const name = document.createElement("strong");
    name.textContent = failure.name;
    li.append(name, `: ${failure.error}`);
    el.uploadFailures.append(li);
  }
  el.uploadSummary.hidden = false;
  el.uploadCount.textContent = `Done: ${done} of ${plural(files.length, "file")} processed`;
  loadStatus();
  if (totals.indexed) safety.known = null; // the new images may carry safety scores
  if (totals.indexed && view.mode === "query" && !duplicates.isOpen()) run(false);
}

// --- Status panel ----------------------------------------------------------------------------

async function loadStatus() {
  let info;
  try {
    infoRequest = api("info");
    info = await infoRequest;
  } catch (error) {
    $("st-triton").textContent = error instanceof KeyNeeded ? "API key needed" : "unknown";
    return;
  }
  const head = info.head || {};
  const triton = head.triton || {};
  const ready = $("st-triton");
  ready.textContent = triton.ready ? "ready" : "not ready";
  ready.className = triton.ready ? "ok" : "bad";
  ready.title = triton.url || "";
  const model = head.model || {};
  $("st-model").textContent = model.error
    ? `${model.name} (${model.error})`
    : `${model.name}/${model.version}`;
  const search = head.search || {};
  $("st-docs").textContent =
    typeof search.documents === "number" ? search.documents.toLocaleString() : "unknown";
  const names = { es: "Elasticsearch", embedded: "embedded" };
  $("st-backend").textContent = names[search.backend] || String(search.backend);
  $("st-backend").title = search.backend === "embedded" ? "tantivy index under the data dir" : "";
  if (search.error) $("st-backend").title = search.error;
  const tritonMetrics = $("st-triton-metrics");
  if (triton.metrics_url) {
    tritonMetrics.href = triton.metrics_url;
    tritonMetrics.hidden = false;
  } else {
    tritonMetrics.hidden = true;
  }
  el.forgetKey.hidden = !apiKey;
  showTrained(info.head && info.head.trained);
}

/** The model selector lists the trained models; hidden while there are none. */
function showTrained(trained) {
  const models = Array.isArray(trained) ? trained : [];
  const chosen = el.modelFilter.value;
  const options = [el.modelFilter.options[0]];
  for (const m of models) {
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = m.name;
    option.title = (m.labels || []).join(", ");
    options.push(option);
  }
  el.modelFilter.replaceChildren(...options);
  el.modelFilter.value = models.some((m) => m.name === chosen) ? chosen : "";
  el.modelFilter.hidden = models.length === 0;
}

// --- Wiring -----------------------------------------------------------------------------------

function saveKey(value) {
  apiKey = value;
  sessionUntil = 0;
  // A session still being asked for with the old key must not stand for the new one.
  sessionRenewal = null;
  try {
    if (value) localStorage.setItem(KEY_STORE, value);
    else localStorage.removeItem(KEY_STORE);
  } catch {
    // Private windows may refuse storage; the key then lasts as long as the page.
  }
}

function wire() {
  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    searchQuery(el.q.value);
  });
  el.clear.addEventListener("click", () => searchQuery("*"));
  el.modelFilter.addEventListener("change", () => {
    if (view.mode === "query") run(false);
  });
  el.sort.replaceChildren(
    ...SORTS.map(([value, label]) => new Option(label, value, value === "", value === "")),
  );
  el.hideUnsafe.addEventListener("change", () => {
    if (!duplicates.isOpen()) run(false);
  });
  el.sort.addEventListener("change", () => {
    view.sort = el.sort.value;
    if (view.mode === "query") run(false);
  });
  el.more.addEventListener("click", () => {
    if (!busy && !view.done) run(true);
  });
  // Infinite scroll: the button loads the next page when it scrolls into view.
  if ("IntersectionObserver" in window) {
    new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !busy && !view.done && view.hits.length) {
        run(true);
      }
    }).observe(el.more);
  }
  el.exampleFile.addEventListener("change", () => {
    searchByFile(el.exampleFile.files[0]);
    el.exampleFile.value = "";
  });
  el.addFiles.addEventListener("change", () => {
    const files = [...el.addFiles.files];
    el.addFiles.value = "";
    addFiles(files);
  });
  $("upload-close").addEventListener("click", () => {
    el.upload.hidden = true;
  });
  $("error-close").addEventListener("click", clearError);
  el.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    saveKey(el.keyInput.value.trim());
    el.keyInput.value = "";
    el.keyForm.hidden = true;
    loadStatus();
    if (duplicates.isOpen()) duplicates.open();
    else run(false);
  });
  el.forgetKey.addEventListener("click", async () => {
    saveKey("");
    el.forgetKey.hidden = true;
    try {
      await fetch("session", { method: "DELETE" });
    } catch {
      // Unreachable server: the cookie runs out on its own.
    }
    location.reload();
  });
  // The view links work as links too (a new tab); a plain click switches in place.
  const plainClick = (e) => !(e.button || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey);
  $("tab-duplicates").addEventListener("click", (event) => {
    if (!plainClick(event)) return;
    event.preventDefault();
    showDuplicates();
  });
  $("tab-search").addEventListener("click", (event) => {
    if (!plainClick(event)) return;
    event.preventDefault();
    searchQuery(el.q.value);
  });
  window.addEventListener("popstate", () => fromLocation());
  wireDrop();
  document.addEventListener("paste", (event) => {
    const file = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file) {
      event.preventDefault();
      searchByFile(file);
    }
  });
}

function wireDrop() {
  let depth = 0;
  const carriesSomething = (event) => {
    const types = [...(event.dataTransfer?.types || [])];
    return types.includes("Files") || types.includes("text/uri-list");
  };
  const hide = () => {
    depth = 0;
    el.drop.hidden = true;
  };
  document.addEventListener("dragenter", (event) => {
    if (!carriesSomething(event)) return;
    depth += 1;
    el.drop.hidden = false;
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) el.drop.hidden = true;
  });
  document.addEventListener("dragover", (event) => {
    if (carriesSomething(event)) event.preventDefault();
  });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    const target = event.target.closest?.(".drop-target");
    hide();
    if (!target) return;
    const files = [...(event.dataTransfer?.files || [])];
    const url = (event.dataTransfer?.getData("text/uri-list") || "")
      .split(/\r?\n/)
      .find((line) => line && !line.startsWith("#"));
    if (target.dataset.action === "add") {
      if (files.length) addFiles(files);
      else if (url) showError(new ApiError("Only files can be added here; use the API for URLs."));
    } else if (files.length) {
      searchByFile(files[0]);
    } else if (url) {
      searchLike(url, url, url);
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") hide();
  });
}

wire();
loadStatus();
fromLocation();
