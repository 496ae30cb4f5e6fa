// A JSON API in JavaScript, the same as the Go http-json template:
//
//   GET  /hello/NAME  {"message": "hello, NAME"}
//   POST /stats       {"numbers": [1, 2.5]} -> count, sum, mean, min, max
//                     (400 if the list is empty)
//
// Errors are JSON too ({"error": "..."}); an unknown path is a 404 and a
// known one with another method a 405.

// reply answers v as JSON with the status code.
function reply(status, v) {
  return new Response(JSON.stringify(v) + "\n", {
    status,
    headers: { "content-type": "application/json" },
  });
}

// routes maps "METHOD /path" patterns (a trailing {name} matches one
// segment) to handlers; compiled once, at initialisation.
const routes = [
  ["GET", /^\/hello\/([^/]+)$/, (request, name) => reply(200, { message: "hello, " + decodeURIComponent(name) })],
  ["POST", /^\/stats$/, stats],
];

async function stats(request) {
  let input;
  try {
    input = await request.json();
  } catch (e) {
    return reply(400, { error: "bad JSON: " + e.message });
  }
  const numbers = input && input.numbers;
  if (!Array.isArray(numbers) || numbers.some((x) => typeof x !== "number")) {
    return reply(400, { error: "numbers: want a list of numbers" });
  }
  if (numbers.length === 0) {
    return reply(400, { error: "numbers: want at least one" });
  }
  const sum = numbers.reduce((a, b) => a + b, 0);
  return reply(200, {
    count: numbers.length,
    sum,
    mean: sum / numbers.length,
    min: Math.min(...numbers),
    max: Math.max(...numbers),
  });
}

export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    let allowed = false;
    for (const [method, pattern, handle] of routes) {
      const m = pattern.exec(path);
      if (!m) continue;
      if (method === request.method) return handle(request, ...m.slice(1));
      allowed = true;
    }
    return allowed
      ? reply(405, { error: "method not allowed" })
      : reply(404, { error: "not found" });
  },
};
