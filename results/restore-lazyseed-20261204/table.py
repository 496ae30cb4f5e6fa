#!/usr/bin/env python3
"""Per round and function: bulk p50 (µs), the restore hook's stretch of the
timeline (restored - state_set) and the first call's (called - call), H and
L, and L/H of the p50; bulk / floor for both."""
import json, statistics
print("| round | function | bulk p50 H | bulk p50 L | L/H | hook H | hook L | first call H | first call L | bulk/floor H | bulk/floor L |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
ratios = {}
for r in range(1, 10):
    try:
        h = json.load(open(f"run-{r}-H.json")); l = json.load(open(f"run-{r}-L.json"))
    except FileNotFoundError:
        break
    for fn in ("hello", "jsontransform"):
        def bulk(d):
            return next(x for x in d["results"] if x["function"] == fn and x["mode"] == "bulk")
        def tl(x):
            return {p["point"]: p["p50_us"] for p in x["timeline"]}
        bh, bl = bulk(h), bulk(l)
        th, tl_ = tl(bh), tl(bl)
        ratios.setdefault(fn, []).append(bl["p50_ms"] / bh["p50_ms"])
        print(f"| {r} | {fn} | {bh['p50_ms']*1000:.0f} | {bl['p50_ms']*1000:.0f} | {bl['p50_ms']/bh['p50_ms']:.2f} | "
              f"{th['restored']-th['state_set']:.0f} | {tl_['restored']-tl_['state_set']:.0f} | "
              f"{th['called']-th['call']:.0f} | {tl_['called']-tl_['call']:.0f} | "
              f"{h['ratios'][fn]['bulk/physical+warm']:.2f} | {l['ratios'][fn]['bulk/physical+warm']:.2f} |")
for fn, v in ratios.items():
    print(f"\n{fn}: L/H median {statistics.median(v):.2f} over {len(v)} rounds")
