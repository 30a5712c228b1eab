// The Duplicates view of the search page: groups of exact copies and near duplicates from
// GET /duplicates, side by side, the copy deeptag suggests keeping first. It only shows them:
// moving files aside is the command line's (`deeptag duplicates --move-to`), which can undo it.
// app.js owns the requests and the messages and hands them in; this file owns the view.

import { takenLabel, thumbnailLink } from "./library.js";

const PAGE = 20; // groups per request
const KINDS = {
  exact: { label: "Exact copy", what: (n) => `the same file at ${n} locations` },
  near: { label: "Near duplicate", what: (n) => `${n} files of one picture` },
};
const BYTE_UNITS = ["bytes", "kB", "MB", "GB", "TB"];

const $ = (id) => document.getElementById(id);

// --- Formatting (pure) ------------------------------------------------------------------------

/** 2_400_000 -> "2.4 MB" (powers of 1000, as file managers count). */
export function bytesLabel(bytes) {
  if (bytes === null || bytes === undefined) return "";
  let value = Number(bytes);
  let unit = 0;
  while (value >= 999.5 && unit < BYTE_UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = unit && value < 10 ? 1 : 0;
  const number = value.toLocaleString(undefined, { maximumFractionDigits: digits });
  return `${number} ${unit === 0 && value === 1 ? "byte" : BYTE_UNITS[unit]}`;
}

/** The file name of a location, for the image's alternative text. */
function fileName(location) {
  return String(location).split(/[\\/]/).filter(Boolean).pop() || String(location);
}

/** A path as text that may break after each slash rather than inside a name. */
function breakable(location) {
  return String(location)
    .split(/(?<=[\\/])/)
    .flatMap((part, i) => (i ? [document.createElement("wbr"), part] : [part]));
}

function element(tag, className, ...content) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...content);
  return node;
}

// --- Rendering --------------------------------------------------------------------------------

function memberCard(member, group, urls) {
  const item = element("li", member.keeper ? "dup-member keeper" : "dup-member");
  item.dataset.id = member.id;
  const full = urls.image(member.id);

  const { frame, img } = thumbnailLink(full, fileName(member.location), member.width, member.height);
  img.addEventListener("error", () => {
    frame.classList.add("broken");
    frame.append(element("span", "unavailable", element("strong", "", "Image unavailable")));
  });
  img.src = urls.thumbnail(member.id);
  frame.append(img);

  const body = element("div", "card-body");
  if (member.keeper) {
    body.append(element("p", "keep", element("span", "badge", "Keep"), " ", group.why));
  }
  const name = element("a", "location", ...breakable(member.location));
  name.href = full;
  name.target = "_blank";
  name.rel = "noopener";
  name.title = `${member.location}: open the full image`;
  body.append(name);

  const facts = element("p", "facts");
  const size = element("span", "pixels", `${member.width}×${member.height}`);
  size.title = `${Number(member.pixels).toLocaleString()} pixels`;
  const parts = [size];
  if (member.bytes !== null && member.bytes !== undefined) {
    const bytes = element("span", "bytes", bytesLabel(member.bytes));
    bytes.title = `${Number(member.bytes).toLocaleString()} bytes`;
    parts.push(bytes);
  }
  if (member.format) parts.push(element("span", "format", member.format));
  if (member.taken_at) {
    const time = element("time", "", takenLabel(member.taken_at));
    time.dateTime = member.taken_at;
    parts.push(time);
  }
  parts.forEach((part, i) => facts.append(...(i ? [" · ", part] : [part])));
  body.append(facts);

  item.append(frame, body);
  return item;
}

function groupItem(group, urls) {
  const kind = KINDS[group.kind] || { label: group.kind, what: (n) => `${n} files` };
  const item = element("li", "dup-group");
  item.dataset.kind = group.kind;
  const title = element(
    "h3",
    "dup-title",
    element("span", `kind ${group.kind}`, kind.label),
    " ",
    element("span", "what", kind.what(group.members.length)),
  );
  const members = element("ul", "dup-members");
  members.setAttribute("aria-label", `${kind.label}: ${kind.what(group.members.length)}`);
  members.append(...group.members.map((m) => memberCard(m, group, urls)));
  item.append(title, members);
  return item;
}

function unhashedNote(count) {
  const images = count === 1 ? "1 image" : `${count.toLocaleString()} images`;
  const verb = count === 1 ? "was" : "were";
  return [
    `${images} indexed before perceptual hashes ${verb} not compared: `,
    element("code", "", "deeptag index --refresh-metadata FOLDER"),
    " adds them.",
  ];
}

// --- The view ---------------------------------------------------------------------------------

/**
 * The view, given what it needs of app.js: ``api(path)``, ``ensureSession()``,
 * ``showError(error)``, ``clearError()``, and ``thumbnail(id)`` and ``image(id)`` URLs.
 */
export function duplicatesView({ api, ensureSession, showError, clearError, thumbnail, image }) {
  const el = {
    section: $("duplicates"),
    search: $("search-view"),
    tabSearch: $("tab-search"),
    tabDuplicates: $("tab-duplicates"),
    summary: $("dup-summary"),
    unhashed: $("dup-unhashed"),
    groups: $("dup-groups"),
    empty: $("dup-empty"),
    prev: $("dup-prev"),
    next: $("dup-next"),
  };
  const urls = { thumbnail, image };
  let from = 0; // the first group shown
  let shown = 0;
  let total = 0;
  let generation = 0; // drops answers to requests that were superseded

  function showTab(duplicates) {
    el.section.hidden = !duplicates;
    el.search.hidden = duplicates;
    for (const [tab, current] of [
      [el.tabSearch, !duplicates],
      [el.tabDuplicates, duplicates],
    ]) {
      if (current) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
  }

  function setBusy(value) {
    el.groups.setAttribute("aria-busy", String(value));
    el.prev.disabled = value;
    el.next.disabled = value;
  }

  async function load(offset) {
    const mine = ++generation;
    clearError();
    setBusy(true);
    el.summary.textContent = "Looking for duplicates…";
    try {
      await ensureSession();
      const params = new URLSearchParams({ size: String(PAGE), from: String(offset) });
      const answer = await api(`duplicates?${params}`);
      if (mine !== generation) return;
      // Past the end (groups were resolved since): back to the first page.
      if (!answer.groups.length && offset > 0) return load(0);
      from = offset;
      total = answer.total;
      shown = answer.groups.length;
      el.groups.replaceChildren(...answer.groups.map((g) => groupItem(g, urls)));
      el.summary.textContent =
        total === 0
          ? ""
          : `${total.toLocaleString()} group${total === 1 ? "" : "s"} of duplicates` +
            (total > shown ? ` · ${from + 1}–${from + shown} shown` : "");
      el.empty.hidden = total !== 0;
      el.unhashed.hidden = !answer.unhashed;
      el.unhashed.replaceChildren(...(answer.unhashed ? unhashedNote(answer.unhashed) : []));
      el.prev.hidden = from === 0;
      el.next.hidden = from + shown >= total;
      window.scrollTo({ top: 0 });
    } catch (error) {
      if (mine !== generation) return;
      el.summary.textContent = "Duplicates could not be listed.";
      el.groups.replaceChildren();
      el.empty.hidden = true;
      el.prev.hidden = true;
      el.next.hidden = true;
      showError(error);
    } finally {
      if (mine === generation) setBusy(false);
    }
  }

  el.prev.addEventListener("click", () => load(Math.max(0, from - PAGE)));
  el.next.addEventListener("click", () => load(from + shown));

  return {
    /** Shows the view and loads its first page. */
    open() {
      showTab(true);
      return load(0);
    },
    /** Back to the search results; an answer still on its way is dropped. */
    close() {
      generation += 1;
      setBusy(false);
      showTab(false);
    },
    isOpen: () => !el.section.hidden,
  };
}
