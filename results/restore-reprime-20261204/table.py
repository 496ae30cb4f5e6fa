#!/usr/bin/env python3
"""Prints table.md from run-R-V.json: per round, A (d2f7332) against B (the same with reprime.patch)."""
import json
rows = []
for fn in ("hello", "jsontransform"):
    for r in (1, 2, 3):
        cells = []
        for v in "AB":
            d = json.load(open(f"run-{r}-{v}.json"))
            phys = {p["function"]: p for p in d["physical"]}
            res = {(x["function"], x["mode"]): x for x in d["results"]}
            e, b = res[(fn, "eager")], res[(fn, "bulk")]
            cells.append((phys[fn]["ws_bytes"] // 1024, e["exec_p50_ms"] * 1000, b["exec_p50_ms"] * 1000,
                          b["p50_ms"] * 1000, d["ratios"][fn]["bulk/physical+warm"]))
        a, bb = cells
        rows.append(f"| {fn} | {r} | {a[0]} / {bb[0]} | {a[1]:.0f} / {bb[1]:.0f} | {a[2]:.0f} / {bb[2]:.0f} | "
                    f"{a[3]:.0f} / {bb[3]:.0f} ({bb[3]/a[3]:.2f}) | {a[4]:.2f} / {bb[4]:.2f} |")
print("| function | round | working set KiB A / B | eager first call µs A / B | bulk first call µs A / B | bulk p50 µs A / B (B/A) | bulk / floor A / B |")
print("|---|---|---|---|---|---|---|")
print("\n".join(rows))
