#!/usr/bin/env python3
"""Per round and function: bulk p50 of A and B, B/A, bulk/floor of each,
and the timeline points up to the read's issue. usage: table.py OUTDIR"""
import glob, json, re, statistics, sys

out = sys.argv[1]
runs = {}
for p in glob.glob(f"{out}/r*-*.json"):
    rnd, v = re.search(r"r(\d+)-([AB])\.json$", p).groups()
    try:
        runs[(int(rnd), v)] = json.load(open(p))
    except ValueError:  # a run still going, or one that failed
        pass
fns = sorted({r["function"] for d in runs.values() for r in d["results"]})
rounds = sorted({k[0] for k in runs})
print("| function | round | A p50 ms | B p50 ms | B/A | A/floor | B/floor | A read issued µs | B read issued µs |")
print("|---|---|---|---|---|---|---|---|---|")
ratios = {f: [] for f in fns}
for f in fns:
    for rnd in rounds:
        if (rnd, "A") not in runs or (rnd, "B") not in runs:
            continue
        row = {}
        for v in "AB":
            d = runs[(rnd, v)]
            r = next(x for x in d["results"] if x["function"] == f and x["mode"] == "bulk")
            tl = {p["point"]: p["p50_us"] for p in r["timeline"]}
            row[v] = (r["p50_ms"], d["ratios"][f]["bulk/physical+warm"], tl.get("read_issued", 0))
        ba = row["B"][0] / row["A"][0]
        ratios[f].append(ba)
        print(f"| {f} | {rnd} | {row['A'][0]:.3f} | {row['B'][0]:.3f} | {ba:.2f} | {row['A'][1]:.2f} | {row['B'][1]:.2f} | {row['A'][2]:.0f} | {row['B'][2]:.0f} |")
for f in fns:
    if ratios[f]:
        print(f"\n{f}: B/A median {statistics.median(ratios[f]):.2f} over {len(ratios[f])} rounds, below 1 in {sum(r < 1 for r in ratios[f])}")
