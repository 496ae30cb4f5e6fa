// A template renderer in JavaScript: GET /?title=T&items=a,b,c renders an
// HTML page from a template with {{name}} placeholders (HTML-escaped) and
// {{#each list}}...{{/each}} loops. POST / with a JSON body renders the
// body's fields instead. Templates are compiled on first use and cached,
// so later requests render from compiled functions.

const page = `<!doctype html>
<html><head><title>{{title}}</title></head>
<body><h1>{{title}}</h1>
<ul>{{#each items}}<li>{{.}}</li>{{/each}}</ul>
<p>{{count}} items, rendered by a thaw function.</p>
</body></html>
`;

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
function escape(v) {
  return String(v === undefined || v === null ? "" : v).replace(/[&<>"']/g, (c) => ESC[c]);
}

// compile turns a template into a function of the data.
function compile(src) {
  const parts = [];
  const re = /{{#each (\w+)}}([\s\S]*?){{\/each}}|{{(\.|\w+)}}/g;
  let last = 0;
  for (let m; (m = re.exec(src)) !== null; last = re.lastIndex) {
    const text = src.slice(last, m.index);
    parts.push(() => text);
    if (m[1]) {
      const list = m[1];
      const body = compile(m[2]);
      parts.push((data) => (data[list] || []).map((item) => body(typeof item === "object" ? item : { ".": item })).join(""));
    } else {
      const key = m[3];
      parts.push((data) => escape(data[key]));
    }
  }
  const tail = src.slice(last);
  parts.push(() => tail);
  return (data) => parts.map((p) => p(data)).join("");
}

const cache = new Map();
function render(src, data) {
  let t = cache.get(src);
  if (!t) {
    t = compile(src);
    cache.set(src, t);
  }
  return t(data);
}

export default {
  async fetch(request) {
    let data;
    if (request.method === "POST") {
      data = await request.json();
    } else {
      const q = new URL(request.url).searchParams;
      const items = (q.get("items") || "").split(",").filter((s) => s !== "");
      data = { title: q.get("title") || "thaw", items };
    }
    data.count = (data.items || []).length;
    return new Response(render(page, data), {
      headers: { "content-type": "text/html; charset=utf-8" },
    });
  },
};
