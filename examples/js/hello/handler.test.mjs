// Tests handler.js natively, with Node's test runner: `node --test` in
// this directory. Node has the same Request and Response as thaw's
// JavaScript runtime, so fetch runs here as it does in a thaw function.
import test from "node:test";
import assert from "node:assert/strict";

import handler from "./handler.js";

// get calls the handler with a GET of path and returns the response.
function get(path) {
  return handler.fetch(new Request("http://fn.test" + path));
}

test("greets the name in ?name=", async () => {
  const res = await get("/?name=thaw");
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "hello, thaw (GET /)\n");
  assert.match(res.headers.get("content-type"), /^text\/plain/);
});

test("greets the world by default", async () => {
  const res = await get("/a/b");
  assert.equal(await res.text(), "hello, world (GET /a/b)\n");
});
