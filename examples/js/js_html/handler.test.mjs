// Tests handler.js natively, with Node's test runner: `node --test` in
// this directory. Node has the same Request and Response as thaw's
// JavaScript runtime, so fetch runs here as it does in a thaw function.
import test from "node:test";
import assert from "node:assert/strict";

import handler from "./handler.js";

test("GET renders the query, escaped", async () => {
  const res = await handler.fetch(new Request("http://fn.test/?title=a%3Cb&items=x,y"));
  assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
  const html = await res.text();
  for (const want of ["<title>a&lt;b</title>", "<li>x</li><li>y</li>", "<p>2 items,"]) {
    assert.ok(html.includes(want), `page lacks ${want}:\n${html}`);
  }
});

test("POST renders the JSON body", async () => {
  const res = await handler.fetch(new Request("http://fn.test/", { method: "POST", body: '{"title":"T","items":["<i>"]}' }));
  const html = await res.text();
  assert.ok(html.includes("<li>&lt;i&gt;</li>"), html);
  assert.ok(html.includes("<p>1 items,"), html);
});
