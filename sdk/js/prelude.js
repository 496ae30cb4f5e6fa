// The Web platform subset a thaw JavaScript function sees: Headers,
// URLSearchParams, URL, TextEncoder, TextDecoder, Request, Response and
// console, as in Cloudflare Workers, Deno and Spin. Bodies are whole
// (no streams): text(), json(), arrayBuffer() and bytes() resolve at once.
// __thaw holds the natives runtime.go installs; the three __thaw_* globals
// at the end are what runtime.go calls.
(function (native) {
  "use strict";
  var global = globalThis;

  function toBytes(v) {
    if (v === undefined || v === null) return new Uint8Array(0);
    if (v instanceof Uint8Array) return v;
    if (v instanceof ArrayBuffer) return new Uint8Array(v);
    if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    return new Uint8Array(native.utf8Encode(String(v)));
  }
  function decode(u8) {
    return native.utf8Decode(u8.buffer, u8.byteOffset, u8.byteLength);
  }
  function exactBuffer(u8) {
    if (u8.byteOffset === 0 && u8.byteLength === u8.buffer.byteLength) return u8.buffer;
    return u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength);
  }

  // Headers: case-insensitive names, kept lowercase and sorted when
  // iterated, as the Fetch standard says; get joins repeated values.
  var NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  function hname(n) {
    n = String(n);
    if (!NAME.test(n)) throw new TypeError("invalid header name: " + n);
    return n.toLowerCase();
  }
  function hvalue(v) { return String(v).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, ""); }
  class Headers {
    constructor(init) {
      this._m = new Map();
      if (init === undefined || init === null) return;
      if (init instanceof Headers) {
        init._m.forEach((vs, k) => this._m.set(k, vs.slice()));
      } else if (Array.isArray(init)) {
        for (var p of init) {
          if (p.length !== 2) throw new TypeError("Headers: each pair needs a name and a value");
          this.append(p[0], p[1]);
        }
      } else if (typeof init === "object") {
        for (var k of Object.keys(init)) this.append(k, init[k]);
      } else {
        throw new TypeError("Headers: init must be an object, an array of pairs or Headers");
      }
    }
    append(n, v) {
      n = hname(n);
      var vs = this._m.get(n);
      if (vs) vs.push(hvalue(v)); else this._m.set(n, [hvalue(v)]);
    }
    set(n, v) { this._m.set(hname(n), [hvalue(v)]); }
    get(n) {
      var vs = this._m.get(hname(n));
      return vs ? vs.join(", ") : null;
    }
    getSetCookie() { return (this._m.get("set-cookie") || []).slice(); }
    has(n) { return this._m.has(hname(n)); }
    delete(n) { this._m.delete(hname(n)); }
    forEach(f, thisArg) {
      for (var p of this._pairs()) f.call(thisArg, p[1], p[0], this);
    }
    _pairs() {
      var out = [];
      Array.from(this._m.keys()).sort().forEach((k) => {
        var vs = this._m.get(k);
        if (k === "set-cookie") vs.forEach((v) => out.push([k, v]));
        else out.push([k, vs.join(", ")]);
      });
      return out;
    }
    entries() { return this._pairs().values(); }
    keys() { return this._pairs().map((p) => p[0]).values(); }
    values() { return this._pairs().map((p) => p[1]).values(); }
    [Symbol.iterator]() { return this.entries(); }
  }

  // URLSearchParams: application/x-www-form-urlencoded pairs in order.
  function formDecode(s) {
    s = s.replace(/\+/g, " ");
    try { return decodeURIComponent(s); } catch (e) { return s; }
  }
  function formEncode(s) {
    return encodeURIComponent(s).replace(/%20/g, "+").replace(/[!'()~]/g,
      (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  }
  class URLSearchParams {
    constructor(init) {
      this._l = [];
      this._url = null;
      if (init === undefined || init === null) return;
      if (init instanceof URLSearchParams) {
        this._l = init._l.map((p) => p.slice());
      } else if (Array.isArray(init)) {
        for (var p of init) this._l.push([String(p[0]), String(p[1])]);
      } else if (typeof init === "object") {
        for (var k of Object.keys(init)) this._l.push([k, String(init[k])]);
      } else {
        this._parse(String(init));
      }
    }
    _parse(s) {
      this._l = [];
      if (s.charAt(0) === "?") s = s.slice(1);
      for (var part of s.split("&")) {
        if (part === "") continue;
        var i = part.indexOf("=");
        if (i < 0) this._l.push([formDecode(part), ""]);
        else this._l.push([formDecode(part.slice(0, i)), formDecode(part.slice(i + 1))]);
      }
    }
    _update() { if (this._url) this._url._search = this._l.length ? "?" + this.toString() : ""; }
    get size() { return this._l.length; }
    append(k, v) { this._l.push([String(k), String(v)]); this._update(); }
    delete(k) { k = String(k); this._l = this._l.filter((p) => p[0] !== k); this._update(); }
    get(k) { k = String(k); var p = this._l.find((p) => p[0] === k); return p ? p[1] : null; }
    getAll(k) { k = String(k); return this._l.filter((p) => p[0] === k).map((p) => p[1]); }
    has(k) { k = String(k); return this._l.some((p) => p[0] === k); }
    set(k, v) {
      k = String(k); v = String(v);
      var i = this._l.findIndex((p) => p[0] === k);
      if (i < 0) { this._l.push([k, v]); } else {
        this._l[i][1] = v;
        this._l = this._l.filter((p, j) => j <= i || p[0] !== k);
      }
      this._update();
    }
    sort() { this._l.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); this._update(); }
    forEach(f, thisArg) { for (var p of this._l.slice()) f.call(thisArg, p[1], p[0], this); }
    entries() { return this._l.map((p) => p.slice()).values(); }
    keys() { return this._l.map((p) => p[0]).values(); }
    values() { return this._l.map((p) => p[1]).values(); }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this._l.map((p) => formEncode(p[0]) + "=" + formEncode(p[1])).join("&"); }
  }

  // URL: parsed by Go's net/url (absolute URLs, or relative to a base).
  class URL {
    constructor(url, base) {
      var u = native.parseURL(String(url), base === undefined ? "" : String(base));
      this._set(u);
    }
    _set(u) {
      this.protocol = u.protocol;
      this.username = u.username;
      this.password = u.password;
      this.hostname = u.hostname;
      this.port = u.port;
      this.pathname = u.pathname;
      this.hash = u.hash;
      this._search = u.search;
      this._params = new URLSearchParams(u.search);
      this._params._url = this;
    }
    static canParse(url, base) {
      try { new URL(url, base); return true; } catch (e) { return false; }
    }
    get search() { return this._search; }
    set search(s) {
      s = String(s);
      this._search = s === "" || s === "?" ? "" : s.charAt(0) === "?" ? s : "?" + s;
      this._params._parse(this._search);
    }
    get searchParams() { return this._params; }
    get host() { return this.port ? this.hostname + ":" + this.port : this.hostname; }
    get origin() { return this.protocol + "//" + this.host; }
    get href() {
      var auth = this.username ? this.username + (this.password ? ":" + this.password : "") + "@" : "";
      return this.protocol + "//" + auth + this.host + this.pathname + this._search + this.hash;
    }
    set href(s) { this._set(native.parseURL(String(s), "")); }
    toString() { return this.href; }
    toJSON() { return this.href; }
  }

  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(s) { return new Uint8Array(native.utf8Encode(s === undefined ? "" : String(s))); }
  }
  class TextDecoder {
    constructor(label) {
      label = label === undefined ? "utf-8" : String(label).trim().toLowerCase();
      if (label !== "utf-8" && label !== "utf8" && label !== "unicode-1-1-utf-8") {
        throw new RangeError("TextDecoder: only utf-8 is supported, not " + label);
      }
    }
    get encoding() { return "utf-8"; }
    decode(input) {
      if (input === undefined || input === null) return "";
      if (!(input instanceof ArrayBuffer) && !ArrayBuffer.isView(input)) {
        throw new TypeError("TextDecoder.decode: want an ArrayBuffer or a view of one");
      }
      var s = decode(toBytes(input));
      return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
    }
  }

  // Body is the part of Request and Response that holds the bytes: a
  // string (kept as given, encoded once if asked for bytes) or a Uint8Array.
  function initBody(self, body, headers) {
    self._used = false;
    self._text = null;
    self._bytes = null;
    if (body === undefined || body === null) return;
    if (typeof body === "string") {
      self._text = body;
      if (!headers.has("content-type")) headers.set("content-type", "text/plain;charset=UTF-8");
    } else if (body instanceof URLSearchParams) {
      self._text = body.toString();
      if (!headers.has("content-type")) headers.set("content-type", "application/x-www-form-urlencoded;charset=UTF-8");
    } else if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) {
      self._bytes = toBytes(body).slice();
    } else {
      self._text = String(body);
      if (!headers.has("content-type")) headers.set("content-type", "text/plain;charset=UTF-8");
    }
  }
  function consume(self) {
    if (self._used) return Promise.reject(new TypeError("body already used"));
    self._used = true;
    return null;
  }
  var BodyMixin = {
    get bodyUsed() { return this._used; },
    get body() { return null; },
    text() {
      return consume(this) || Promise.resolve(this._text !== null ? this._text : this._bytes ? decode(this._bytes) : "");
    },
    json() {
      return this.text().then((t) => JSON.parse(t));
    },
    bytes() {
      return consume(this) || Promise.resolve(this._bytes ? this._bytes.slice() : toBytes(this._text === null ? "" : this._text));
    },
    arrayBuffer() {
      return this.bytes().then((b) => b.buffer);
    },
  };
  function mixBody(cls) {
    for (var k of Object.getOwnPropertyNames(BodyMixin)) {
      Object.defineProperty(cls.prototype, k, Object.getOwnPropertyDescriptor(BodyMixin, k));
    }
  }
  function cloneBody(from, to) {
    if (from._used) throw new TypeError("body already used");
    to._used = false;
    to._text = from._text;
    to._bytes = from._bytes;
  }

  var METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH"];
  class Request {
    constructor(input, init) {
      init = init || {};
      var from = input instanceof Request ? input : null;
      this.url = from ? from.url : new URL(String(input)).href;
      var m = init.method !== undefined ? String(init.method) : from ? from.method : "GET";
      this.method = METHODS.indexOf(m.toUpperCase()) >= 0 ? m.toUpperCase() : m;
      this.headers = new Headers(init.headers !== undefined ? init.headers : from ? from.headers : undefined);
      if (init.body !== undefined && init.body !== null) {
        if (this.method === "GET" || this.method === "HEAD") throw new TypeError("Request with " + this.method + " cannot have a body");
        initBody(this, init.body, this.headers);
      } else if (from) {
        cloneBody(from, this);
      } else {
        initBody(this, null, this.headers);
      }
    }
    clone() { return new Request(this); }
  }
  mixBody(Request);

  class Response {
    constructor(body, init) {
      init = init || {};
      var status = init.status === undefined ? 200 : Number(init.status);
      if (!(status >= 200 && status <= 599) || Math.floor(status) !== status) {
        throw new RangeError("Response status must be an integer in [200, 599], not " + init.status);
      }
      this.status = status;
      this.statusText = init.statusText === undefined ? "" : String(init.statusText);
      this.headers = new Headers(init.headers);
      this.type = "default";
      this.redirected = false;
      this.url = "";
      if ((status === 204 || status === 205 || status === 304) && body !== undefined && body !== null) {
        throw new TypeError("Response with status " + status + " cannot have a body");
      }
      initBody(this, body, this.headers);
    }
    get ok() { return this.status >= 200 && this.status < 300; }
    clone() {
      var r = new Response(null, { status: this.status, statusText: this.statusText, headers: this.headers });
      cloneBody(this, r);
      return r;
    }
    static json(data, init) {
      var r = new Response(JSON.stringify(data), init);
      if (!init || !init.headers || !new Headers(init.headers).has("content-type")) r.headers.set("content-type", "application/json");
      return r;
    }
    static redirect(url, status) {
      status = status === undefined ? 302 : status;
      if ([301, 302, 303, 307, 308].indexOf(status) < 0) throw new RangeError("invalid redirect status " + status);
      return new Response(null, { status: status, headers: { location: new URL(String(url)).href } });
    }
  }
  mixBody(Response);

  function format(args) {
    return Array.prototype.map.call(args, (a) => {
      if (typeof a === "string") return a;
      if (a instanceof Error) return a.stack || String(a);
      if (typeof a === "object" && a !== null) {
        try { return JSON.stringify(a); } catch (e) { return String(a); }
      }
      return String(a);
    }).join(" ");
  }
  var console = {};
  ["log", "info", "warn", "error", "debug"].forEach((level) => {
    console[level] = function () { native.log(level, format(arguments)); };
  });

  var names = { Headers, URLSearchParams, URL, TextEncoder, TextDecoder, Request, Response, console };
  for (var n of Object.keys(names)) {
    Object.defineProperty(global, n, { value: names[n], writable: true, configurable: true });
  }
  global.queueMicrotask = (f) => { Promise.resolve().then(() => f()); };

  // The entry points runtime.go calls.
  Object.defineProperty(global, "__thaw_request", { value: function (method, url, headers, body) {
    var r = Object.create(Request.prototype);
    r.url = url;
    r.method = method;
    r.headers = new Headers();
    for (var i = 0; i < headers.length; i += 2) {
      var vs = r.headers._m.get(headers[i]);
      if (vs) vs.push(headers[i + 1]); else r.headers._m.set(headers[i], [headers[i + 1]]);
    }
    r._used = false;
    r._text = null;
    r._bytes = body === null ? null : new Uint8Array(body);
    return r;
  } });
  Object.defineProperty(global, "__thaw_response", { value: function (r) {
    if (!(r instanceof Response)) {
      throw new TypeError("fetch must return a Response (or a Promise of one), not " + (r === null ? "null" : typeof r));
    }
    var body = r._bytes !== null ? exactBuffer(r._bytes) : r._text;
    return { status: r.status, headers: r.headers._pairs(), body: body };
  } });
  // What runtime.go's warm calls at load in place of the script's fetch:
  // a request's usual work, so that goja builds what it builds lazily
  // before the snapshot.
  Object.defineProperty(global, "__thaw_warm", { value: async function (request) {
    var url = new URL(request.url);
    url.searchParams.get("a");
    request.headers.get("content-type");
    request.headers.has("x");
    var v = await request.clone().json();
    await request.text();
    var bytes = new TextEncoder().encode(JSON.stringify(v) + url.pathname);
    new TextDecoder().decode(bytes);
    Response.json({ a: [1, "b"] }, { status: 201 });
    return new Response("ok " + bytes.length + "\n", { headers: { "content-type": "text/plain" } });
  } });
})(__thaw);
delete globalThis.__thaw;
