#!/usr/bin/env python3
"""Tables of run.sh's output and of small/ (hello and jsontransform alone), in markdown."""
import glob, json, os
here = os.path.dirname(os.path.abspath(__file__))
def load(f): return json.load(open(f))
print("## Every mode (run.sh): ratios per round\n")
print("| engine | function | bulk / floor | lazy / reap | reap / bulk | cold / bulk | bulk p50 ms | floor ms | bulk instantiate ms | bulk first call ms | warm request ms |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
rows = {}
for e in ("wasmtime", "wazero"):
    for f in sorted(glob.glob(f"{here}/{e}-*.json")):
        d = load(f)
        phys = {p["function"]: p for p in d["physical"]}
        for fn, r in d["ratios"].items():
            b = next(x for x in d["results"] if x["function"] == fn and x["mode"] == "bulk")
            w = next(x for x in d["results"] if x["function"] == fn and x["mode"] == "warm")
            rows.setdefault((e, fn), []).append((r["bulk/physical+warm"], r["lazy/reap"], r["reap/bulk"], r["cold/bulk"],
                b["p50_ms"], phys[fn]["physical_plus_warm_ms"], b["instantiate_p50_ms"], b["exec_p50_ms"], w["p50_ms"]))
for (e, fn), rs in rows.items():
    cols = [", ".join(f"{r[i]:.2f}" if i < 4 else f"{r[i]:.3f}" for r in rs) for i in range(9)]
    print(f"| {e} | {fn} | " + " | ".join(cols) + " |")
print("\n## initheavy bulk, wazero / wasmtime per round\n")
for k in (1, 2):
    a = next(x for x in load(f"{here}/wasmtime-{k}.json")["results"] if x["function"] == "initheavy" and x["mode"] == "bulk")
    z = next(x for x in load(f"{here}/wazero-{k}.json")["results"] if x["function"] == "initheavy" and x["mode"] == "bulk")
    print(f"- round {k}: {z['p50_ms'] / a['p50_ms']:.2f}")
print("\n## hello and jsontransform alone (small/: rb = --modes reap,bulk; cold = --modes cold,reap,bulk), wasmtime\n")
print("| run | function | bulk / floor | bulk p50 ms | floor ms | instantiate ms | first call ms |")
print("|---|---|---|---|---|---|---|")
for f in sorted(glob.glob(f"{here}/small/*.json")):
    d = load(f)
    phys = {p["function"]: p for p in d["physical"]}
    for x in d["results"]:
        if x["mode"] == "bulk":
            fn = x["function"]
            print(f"| {os.path.basename(f)} | {fn} | {d['ratios'][fn]['bulk/physical+warm']:.2f} | {x['p50_ms']:.3f} | {phys[fn]['physical_plus_warm_ms']:.3f} | {x['instantiate_p50_ms']:.3f} | {x['exec_p50_ms']:.3f} |")
