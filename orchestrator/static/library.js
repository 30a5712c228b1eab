// The photo library on the search page: when and where each photo was taken, filter chips
// from the server's facets (years, places, cameras) and the sort order. Pure DOM helpers; the
// page (app.js) owns the state and the requests.

/** The facets the page asks for, in the order shown, with how a chosen value filters. */
export const FACETS = [
  {
    name: "year",
    label: "Year",
    clause: (value) => `taken_at:[${value}-01-01 TO ${value}-12-31]`,
  },
  { name: "place.country", label: "Country", clause: (value) => `place.country:${quoted(value)}` },
  { name: "place.city", label: "Place", clause: (value) => `place.city:${quoted(value)}` },
  { name: "camera.model", label: "Camera", clause: (value) => `camera.model:${quoted(value)}` },
];

/** The ``facets`` parameter of GET /search. */
export const FACET_PARAM = FACETS.map((f) => f.name).join(",");

/** The sort orders the page offers; "" is relevance (the server's default). */
export const SORTS = [
  ["", "Relevance"],
  ["-taken_at", "Newest first"],
  ["taken_at", "Oldest first"],
];

function quoted(value) {
  return `"${String(value).replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/** The query clauses of the chosen filters, ANDed (empty string when none). */
export function filterClauses(filters) {
  return filters
    .map(({ name, value }) => FACETS.find((f) => f.name === name)?.clause(value))
    .filter(Boolean)
    .join(" AND ");
}

/** ``q`` narrowed by ``clauses`` ("" leaves it as it is). */
export function narrowed(q, clauses) {
  if (!clauses) return q;
  return q === "*" ? clauses : `(${q}) AND ${clauses}`;
}

/** "14 Jul 2019, 10:30" in the reader's language, from the ISO date the photo recorded. */
export function takenLabel(takenAt) {
  if (!takenAt) return "";
  // The clock time the camera showed: the offset only places the instant, so read the
  // digits as written rather than converting them to the browser's time zone.
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}))?/.exec(takenAt);
  if (!match) return takenAt;
  const [, y, m, d, hh, mm] = match;
  const date = new Date(Date.UTC(+y, +m - 1, +d, +(hh || 0), +(mm || 0)));
  const options = { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" };
  if (hh) Object.assign(options, { hour: "2-digit", minute: "2-digit" });
  return date.toLocaleString(undefined, options);
}

/** "Paris, France" from a hit's place, or "". */
export function placeLabel(place) {
  if (!place) return "";
  const parts = [place.city, place.country || place.country_code].filter(Boolean);
  return [...new Set(parts)].join(", ");
}

/** The card's line of when and where, or null when the photo says neither. */
export function photoLine(hit) {
  const when = takenLabel(hit.taken_at);
  const where = placeLabel(hit.place);
  if (!when && !where) return null;
  const line = document.createElement("p");
  line.className = "photo-line";
  if (when) {
    const time = document.createElement("time");
    time.dateTime = hit.taken_at;
    time.textContent = when;
    line.append(time);
  }
  if (where) {
    const place = document.createElement("span");
    place.className = "place";
    place.textContent = where;
    if (when) line.append(" · ");
    line.append(place);
  }
  return line;
}

/**
 * Filter chips for the facets of the current answer; a chosen chip stays shown (pressed) so
 * it can be taken off again.
 */
export function renderFacets(container, facets, filters, onToggle) {
  container.replaceChildren();
  let shown = 0;
  for (const facet of FACETS) {
    const values = (facets?.[facet.name] || []).filter((v) => v.value !== "" && v.count > 0);
    const chosen = filters.filter((f) => f.name === facet.name);
    for (const f of chosen) {
      if (!values.some((v) => String(v.value) === f.value)) values.unshift({ value: f.value });
    }
    // One value that every hit shares narrows nothing; show it only when it is a filter.
    if (!values.length || (values.length === 1 && !chosen.length)) continue;
    const group = document.createElement("div");
    group.className = "facet";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", facet.label);
    const title = document.createElement("span");
    title.className = "facet-title";
    title.textContent = facet.label;
    group.append(title);
    for (const { value, count } of values.slice(0, 8)) {
      const text = String(value);
      const on = chosen.some((f) => f.value === text);
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "facet-chip";
      chip.dataset.facet = facet.name;
      chip.dataset.value = text;
      chip.setAttribute("aria-pressed", String(on));
      chip.title = on ? `${facet.label} ${text}: remove this filter` : `Only ${text}`;
      chip.append(text);
      if (count !== undefined) {
        const n = document.createElement("span");
        n.className = "count";
        n.textContent = String(count);
        chip.append(" ", n);
      }
      chip.addEventListener("click", () => onToggle(facet.name, text));
      group.append(chip);
    }
    container.append(group);
    shown += 1;
  }
  container.hidden = shown === 0;
}

/**
 * A card's picture: a link to the full image (kept out of the keyboard order and from readers:
 * the name below the picture is the link for them) around a lazily loaded ``img`` sized ahead
 * of loading, so the grid does not jump. The caller sets ``img.src`` and what an error shows.
 */
export function thumbnailLink(href, alt, width, height) {
  const frame = document.createElement("a");
  frame.className = "thumb";
  frame.href = href;
  frame.target = "_blank";
  frame.rel = "noopener";
  frame.tabIndex = -1;
  frame.setAttribute("aria-hidden", "true");
  const img = document.createElement("img");
  img.loading = "lazy";
  img.decoding = "async";
  img.alt = alt;
  if (width && height) {
    img.width = width;
    img.height = height;
  }
  return { frame, img };
}
