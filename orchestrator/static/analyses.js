// What the analyses found in an image, on its card: the text read in it (`deeptag index --ocr`),
// collapsed, with the words searched for marked; and its safety score (`--safety`): images
// above the server's threshold are blurred until clicked. Pure DOM helpers; the page (app.js)
// owns the state and the requests. The text is user data: it only ever goes in as text nodes.

/** The "Hide unsafe" filter: scored images above ``threshold`` left out, unscored ones kept. */
export function unsafeFilter(threshold) {
  // `* -x`: "everything but x" on both backends as it stands, whatever query it joins.
  return `* -nsfw:>${numberText(threshold)}`;
}

/** The query that counts images with a safety score (are there any?). */
export const SCORED_QUERY = "nsfw:>=0";

/** A number as the query syntax reads it: plain digits, never "1e-7". */
function numberText(value) {
  return Number(value)
    .toFixed(6)
    .replace(/\.?0+$/, "");
}

/** Whether a hit's safety score is above the threshold (hits never scored are not). */
export function isSensitive(hit, threshold) {
  return typeof hit.nsfw === "number" && hit.nsfw > threshold;
}

const WORD = /[\p{L}\p{N}]+/gu;
const TERM = /(NOT\s+|[-+!])?(?:([\p{L}\p{N}_.]+):)?("[^"]*"?|[^\s()"]+)/gu;

/**
 * The lower-cased words of a query string that text in an image can match: bare words and
 * phrases and those of ``text:``; not negated ones, operators, or values of other fields.
 */
export function queryWords(query) {
  const words = new Set();
  const text = String(query || "").replace(/[()]/g, " ");
  for (const [, sign, field, value] of text.matchAll(TERM)) {
    if (sign && sign.trim() !== "+") continue;
    if (field && field !== "text") continue;
    if (!field && /^(AND|OR|NOT|&&|\|\|)$/.test(value)) continue;
    for (const word of value.match(WORD) || []) words.add(word.toLowerCase());
  }
  return words;
}

/** ``text`` as nodes, each whole word of ``words`` (lower-cased) in a ``<mark>``. */
export function marked(text, words) {
  const nodes = [];
  let last = 0;
  for (const match of String(text).matchAll(WORD)) {
    if (!words.has(match[0].toLowerCase())) continue;
    if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
    const mark = document.createElement("mark");
    mark.textContent = match[0];
    nodes.push(mark);
    last = match.index + match[0].length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

/**
 * "Text in image", collapsed to its first line; opened, every line, the words searched for
 * marked. Null when the image has no text.
 */
export function textDetails(hit, query) {
  const text = typeof hit.text === "string" ? hit.text.trim() : "";
  if (!text) return null;
  const words = queryWords(query);
  const details = document.createElement("details");
  details.className = "ocr";
  const summary = document.createElement("summary");
  const label = document.createElement("span");
  label.className = "ocr-label";
  label.textContent = "Text in image";
  const first = document.createElement("span");
  first.className = "ocr-first";
  const firstLine = text.split("\n", 1)[0];
  first.append(...marked(firstLine, words));
  summary.append(label, " ", first);
  summary.title = firstLine;
  const all = document.createElement("p");
  all.className = "ocr-text";
  all.append(...marked(text, words));
  details.append(summary, all);
  return details;
}

/**
 * Blur a card's picture: a button over it says why and shows it when pressed. Until then a
 * click on the picture shows it rather than opening the image. ``onReveal`` runs once shown.
 */
export function blurPicture(item, frame, onReveal) {
  item.classList.add("sensitive");
  const cover = document.createElement("button");
  cover.type = "button";
  cover.className = "reveal";
  const words = document.createElement("span");
  const title = document.createElement("strong");
  title.textContent = "Sensitive";
  words.append(title, " — click to show");
  cover.append(words);
  cover.setAttribute("aria-label", "Sensitive image: show it");
  const reveal = () => {
    if (!item.classList.contains("sensitive")) return;
    item.classList.remove("sensitive");
    cover.remove();
    onReveal();
  };
  cover.addEventListener("click", reveal);
  frame.addEventListener("click", (event) => {
    if (!item.classList.contains("sensitive")) return;
    event.preventDefault();
    reveal();
  });
  item.append(cover);
  return () => item.classList.contains("sensitive");
}
