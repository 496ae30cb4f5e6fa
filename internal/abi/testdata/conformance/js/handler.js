// The JavaScript half of the ABI conformance test: the same function as
// ../go/main.go, written against the Web API of sdk/js.
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const q = url.searchParams;
    if (url.pathname === "/panic") {
      throw new Error("conformance: " + (q.get("msg") || ""));
    }
    if (url.pathname === "/multi") {
      const headers = new Headers();
      headers.append("set-cookie", "a=1");
      headers.append("set-cookie", "b=2");
      return new Response(null, { headers });
    }
    const body = await request.arrayBuffer();
    const status = q.has("status") ? Number(q.get("status")) : 200;
    const headers = new Headers({
      "x-method": request.method,
      "x-path": url.pathname,
      "x-query-raw": url.search.slice(1),
      "x-query-name": q.get("name") || "",
      "x-host": request.headers.get("host") || "",
      "x-length": String(body.byteLength),
    });
    if (request.headers.has("x-in")) headers.set("x-in", request.headers.get("x-in"));
    if (status === 204 || status === 304) {
      return new Response(null, { status, headers });
    }
    headers.set("content-type", "application/octet-stream");
    return new Response(body, { status, headers });
  },
};
