#!/usr/bin/env python3
"""Markdown tables of the runs in this directory (run.sh): per run and function, the warm p50 of
wasmtime, bare and wazero and the ratios wasmtime/bare and wazero/wasmtime (warm and cold, from the
run's own "ratios"); then per build and function the median of those ratios over the rounds."""
import glob, json, os, statistics

d = os.path.dirname(os.path.abspath(__file__))
runs = []  # (build, round, report)
for f in sorted(glob.glob(f"{d}/*-*.json")):
    build, rnd = os.path.basename(f)[:-5].rsplit("-", 1)
    try:
        runs.append((build, int(rnd), json.load(open(f))))
    except ValueError:
        continue
runs.sort(key=lambda r: (r[1], r[0] != "static"))

def us(x):
    return f"{x:.0f} µs" if x < 1000 else f"{x / 1000:.2f} ms"

print("| run | function | wasmtime warm p50 | bare warm p50 | wazero warm p50 | wasmtime/bare warm | wasmtime/bare cold | wazero/wasmtime warm |")
print("|---|---|---|---|---|---|---|---|")
ratios = {}  # (build, function) -> [warm ratio]
for build, rnd, rep in runs:
    p50 = {(r["function"], r["engine"]): r["warm_p50_us"] for r in rep["results"] if not r.get("skipped")}
    for fn, rs in rep["ratios"].items():
        w = rs["wasmtime/bare warm"]
        ratios.setdefault((build, fn), []).append(w)
        print(f"| {build} {rnd} | {fn} | {us(p50[fn, 'wasmtime'])} | {us(p50[fn, 'bare'])} | {us(p50[fn, 'wazero'])} "
              f"| {w:.2f}x | {rs['wasmtime/bare cold']:.2f}x | {rs['wazero/wasmtime warm']:.1f}x |")
print()
print("| function | static: wasmtime/bare warm, median (runs) | dynamic: the same |")
print("|---|---|---|")
for fn in dict.fromkeys(fn for _, fn in ratios):
    cell = lambda b: (f"{statistics.median(ratios[b, fn]):.2f}x ({', '.join(f'{x:.2f}' for x in ratios[b, fn])})"
                      if (b, fn) in ratios else "-")
    print(f"| {fn} | {cell('static')} | {cell('dynamic')} |")
