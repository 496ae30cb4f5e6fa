// jstemplates: the templates warm-up workload in JavaScript. Request k
// renders page template pick(k) of 200 with ?items= items (default 5); k
// is ?k= when given, else the instance's request count (1, 2, ...), so
// without ?k= the answer depends on how many requests the instance has
// served. Each template is compiled on first use and kept: compiling
// (whitespace folding, a tag-balance check and tokenising, character by
// character, as a template engine's parser does) costs many times what
// rendering a compiled template does, so an instance gets faster as
// popular templates are compiled, and a snapshot taken later holds them.

const M = 200;

// source returns template i: 6 to 13 sections of mostly static HTML with
// a few {{placeholders}}, the first listing the items.
function source(i) {
  const parts = [`<!DOCTYPE html><html><head><title>{{title}} (${i})</title></head><body>\n`];
  parts.push(`<section id="items-${i}">{{#each items}}
  <div class="item" data-id="{{id}}">
    <a href="/item/{{id}}">{{name}}</a>   <span>{{price}}</span>
    <button onclick="buy({{id}})">buy</button>
  </div>{{/each}}
</section>\n`);
  const sections = 6 + (i % 8);
  for (let s = 1; s < sections; s++) {
    parts.push(`<nav id="s${i}-${s}" style="color: {{color}}; margin: ${s}px">\n  <h2 title="{{title}} ${i}">{{title}} / section ${s}</h2>\n`);
    for (let l = 0; l < 8; l++) {
      parts.push(`  <a href="/c/${i}/${s}/${l}" class="nav nav-${l}"   style="background: #fff;  padding: ${l}px" onclick="track('nav', ${l}, ${s})">static   link ${l} of section ${s}</a>\n`);
    }
    parts.push(`  <span>{{title}}</span>\n</nav>\n`);
  }
  parts.push("</body></html>\n");
  return parts.join("");
}

// fold collapses runs of blanks to one space, character by character.
function fold(src) {
  const out = [];
  let blank = false;
  for (let j = 0; j < src.length; j++) {
    const c = src.charCodeAt(j);
    if (c === 32 || c === 9) {
      if (!blank) out.push(" ");
      blank = true;
    } else {
      out.push(src[j]);
      blank = false;
    }
  }
  return out.join("");
}

// checkTags fails unless the HTML's open and close tags balance.
function checkTags(src) {
  const stack = [];
  for (let j = 0; j < src.length; j++) {
    if (src[j] !== "<" || src[j + 1] === "!") continue;
    let k = j + 1;
    const closing = src[k] === "/";
    if (closing) k++;
    let name = "";
    while (k < src.length && /[a-z0-9]/.test(src[k])) name += src[k++];
    if (closing) {
      if (stack.pop() !== name) throw new Error("template: unbalanced </" + name + ">");
    } else if (name !== "" && name !== "br" && name !== "img" && name !== "meta") {
      stack.push(name);
    }
  }
  if (stack.length) throw new Error("template: unclosed <" + stack.pop() + ">");
}

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
function escape(v) {
  return String(v === undefined ? "" : v).replace(/[&<>"']/g, (c) => ESC[c]);
}

// compile turns a template into a function of the data.
function compile(src) {
  checkTags(src);
  src = fold(src);
  const parts = [];
  let from = 0;
  for (let j = 0; j < src.length; ) {
    if (src[j] !== "{" || src[j + 1] !== "{") {
      j++;
      continue;
    }
    const t = src.slice(from, j);
    const end = src.indexOf("}}", j);
    const tag = src.slice(j + 2, end);
    j = end + 2;
    parts.push(() => t);
    if (tag.startsWith("#each ")) {
      const close = src.indexOf("{{/each}}", j);
      const body = compile(src.slice(j, close));
      const list = tag.slice(6);
      parts.push((d) => d[list].map(body).join(""));
      j = close + 9;
    } else {
      parts.push((d) => escape(d[tag]));
    }
    from = j;
  }
  const tail = src.slice(from);
  parts.push(() => tail);
  return (d) => parts.map((p) => p(d)).join("");
}

// pick returns template k's index: skewed toward low indices, as page
// popularity is, from a hash of k.
function pick(k) {
  let h = Math.imul(k ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  const u = ((h ^ (h >>> 16)) >>> 0) / 4294967296;
  return Math.min(M - 1, Math.floor(Math.pow(M + 1, u)) - 1);
}

// data returns the page data for template t with n items.
function data(t, n) {
  const items = [];
  let x = t * 7919 + n;
  for (let j = 0; j < n; j++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    items.push({ id: x % 100000, name: `Widget "${j}"`, price: `$${(x % 10000) / 100}` });
  }
  return { title: `Catalogue <${t}> & more`, color: ["red", "#336699", "black"][t % 3], items };
}

// checksum is a 32-bit FNV-1a of every 8th UTF-16 code unit of s, in
// hex: enough to tell pages apart at a fraction of rendering's cost.
function checksum(s) {
  let h = 0x811c9dc5;
  for (let j = 0; j < s.length; j += 8) h = Math.imul(h ^ s.charCodeAt(j), 16777619) >>> 0;
  return h.toString(16).padStart(8, "0");
}

const compiled = new Map();
let count = 0;

function int(q, name, def, min, max) {
  if (!q.has(name)) return def;
  const v = Number(q.get(name));
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${name} must be an integer in [${min}, ${max}]`);
  return v;
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/stats") {
      return Response.json({ compiled: compiled.size, requests: count });
    }
    count++;
    let n, k;
    try {
      n = int(url.searchParams, "items", 5, 0, 1000);
      k = int(url.searchParams, "k", count, 0, 2 ** 40);
    } catch (e) {
      return Response.json({ error: e.message }, { status: 400 });
    }
    const t = pick(k);
    let tmpl = compiled.get(t);
    if (!tmpl) {
      tmpl = compile(source(t));
      compiled.set(t, tmpl);
    }
    const html = tmpl(data(t, n));
    return Response.json({ k, template: t, bytes: html.length, checksum: checksum(html) });
  },
};
