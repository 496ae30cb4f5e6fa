#!/usr/bin/env python3
"""Per variant and function, the timeline stretches (µs, differences of the
per-point medians) of every round. usage: gaps.py OUTDIR [FROM TO]..."""
import glob, json, re, sys

out = sys.argv[1]
pairs = list(zip(sys.argv[2::2], sys.argv[3::2])) or [("start", "read_issued"), ("read_checked", "restored"), ("read_checked", "call")]
for v in "AB":
    for f in ["hello", "jsontransform"]:
        rows = []
        for p in sorted(glob.glob(f"{out}/r*-{v}.json"), key=lambda p: int(re.search(r"r(\d+)-", p).group(1))):
            try:
                d = json.load(open(p))
            except ValueError:
                continue
            r = next((x for x in d["results"] if x["function"] == f), None)
            if r is None:
                continue
            tl = {q["point"]: q["p50_us"] for q in r["timeline"]}
            tl["start"] = 0
            rows.append(tl)
        if rows:
            print(v, f, "  ".join(f"{a}→{b} " + ",".join(str(round(t.get(b, 0) - t.get(a, 0))) for t in rows) for a, b in pairs))
