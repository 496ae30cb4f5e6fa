// A thaw function in JavaScript: it greets the caller by the name in
// ?name= (default "world") and echoes the request's method and path.
//
// The top level runs once, when the function is deployed, before thaw
// takes its snapshot; every request then calls fetch.
const greeting = "hello";

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const name = url.searchParams.get("name") || "world";
    return new Response(`${greeting}, ${name} (${request.method} ${url.pathname})\n`, {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  },
};
