#!/usr/bin/env python3
"""Per round: bulk p50 (ms) A and B, B/A, and bulk / floor for both floors."""
import json, glob, statistics
rows = []
print("| round | function | bulk p50 A | bulk p50 B | B/A | A bulk/floor | B bulk/floor | A bulk/(read+first) | B bulk/(read+first) | B instantiated, µs (A) |")
print("|---|---|---|---|---|---|---|---|---|---|")
ratios = {}
for r in range(1, 10):
    try:
        a = json.load(open(f"run-{r}-A.json")); b = json.load(open(f"run-{r}-B.json"))
    except FileNotFoundError:
        break
    for fn in ("hello", "jsontransform"):
        def bulk(d):
            return next(x for x in d["results"] if x["function"] == fn and x["mode"] == "bulk")
        def point(x, name):
            return next((p["p50_us"] for p in x.get("timeline", []) if p["point"] == name), float("nan"))
        ba, bb = bulk(a), bulk(b)
        ra, rb = a["ratios"][fn], b["ratios"][fn]
        ratios.setdefault(fn, []).append(bb["p50_ms"] / ba["p50_ms"])
        print(f"| {r} | {fn} | {ba['p50_ms']:.3f} | {bb['p50_ms']:.3f} | {bb['p50_ms']/ba['p50_ms']:.2f} | "
              f"{ra['bulk/physical+warm']:.2f} | {rb['bulk/physical+warm']:.2f} | {ra['bulk/physical+first']:.2f} | {rb['bulk/physical+first']:.2f} | "
              f"{point(bb,'instantiated'):.0f} ({point(ba,'instantiated'):.0f}) |")
for fn, v in ratios.items():
    print(f"\n{fn}: B/A median {statistics.median(v):.2f} over {len(v)} rounds")
