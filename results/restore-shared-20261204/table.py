#!/usr/bin/env python3
"""Per-round bulk figures of ab.sh's output."""
import json, os
here = os.path.dirname(os.path.abspath(__file__))
print("| version | round | hello bulk / floor | hello bulk p50 ms | jsontransform bulk / floor | jsontransform bulk p50 ms |")
print("|---|---|---|---|---|---|")
for v in "AB":
    for r in range(1, 6):
        d = json.load(open(f"{here}/{v}-{r}.json"))
        b = {x["function"]: x for x in d["results"] if x["mode"] == "bulk"}
        print(f"| {v} | {r} | {d['ratios']['hello']['bulk/physical+warm']:.2f} | {b['hello']['p50_ms']:.3f} | "
              f"{d['ratios']['jsontransform']['bulk/physical+warm']:.2f} | {b['jsontransform']['p50_ms']:.3f} |")
