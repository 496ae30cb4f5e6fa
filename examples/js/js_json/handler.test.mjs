// Tests handler.js natively, with Node's test runner: `node --test` in
// this directory. Node has the same Request and Response as thaw's
// JavaScript runtime, so fetch runs here as it does in a thaw function.
import test from "node:test";
import assert from "node:assert/strict";

import handler from "./handler.js";

// call sends method path (with a body) and returns the status and the
// decoded JSON answer.
async function call(method, path, body) {
  const res = await handler.fetch(new Request("http://fn.test" + path, { method, body }));
  assert.equal(res.headers.get("content-type"), "application/json");
  return [res.status, await res.json()];
}

test("POST /stats summarises the numbers", async () => {
  assert.deepEqual(await call("POST", "/stats", '{"numbers":[1,2,3]}'), [200, { count: 3, sum: 6, mean: 2, min: 1, max: 3 }]);
});

test("POST /stats refuses bad input", async () => {
  assert.deepEqual(await call("POST", "/stats", '{"numbers":[]}'), [400, { error: "numbers: want at least one" }]);
  const [status, body] = await call("POST", "/stats", "{");
  assert.equal(status, 400);
  assert.match(body.error, /^bad JSON: /);
});

test("GET /hello/NAME", async () => {
  assert.deepEqual(await call("GET", "/hello/you"), [200, { message: "hello, you" }]);
});

test("wrong method and unknown path", async () => {
  assert.deepEqual(await call("GET", "/stats"), [405, { error: "method not allowed" }]);
  assert.deepEqual(await call("GET", "/nope"), [404, { error: "not found" }]);
});
