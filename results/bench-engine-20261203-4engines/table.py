#!/usr/bin/env python3
"""Markdown tables of thaw bench engine runs in this directory: part1 (cut short; its rows are read from
the progress table, which has every field but the stages) and part2 (JSON). Per function: warm p50/p99
and cold p50 on every engine, and the ratios wazero/wasmtime and wasmtime/bare."""
import glob, json, os

d = os.path.dirname(os.path.abspath(__file__))
rows = {}  # (function, engine) -> dict
order = []
for f in sorted(glob.glob(f"{d}/*-progress.txt")):
    part = os.path.basename(f).split("-")[0]
    for line in open(f):
        p = line.split()
        if len(p) >= 11 and p[0] != "function" and p[2] != "-":
            r = dict(function=p[0], engine=p[1], trials=int(p[2]), warm_p50_us=float(p[3]), warm_p99_us=float(p[4]),
                     cold_p50_ms=float(p[5]), cold_p99_ms=float(p[6]), part=part)
            rows[(p[0], p[1])] = r
            if p[0] not in order:
                order.append(p[0])
for f in sorted(glob.glob(f"{d}/*-bench-engine.json")):
    try:
        rep = json.load(open(f))
    except ValueError:
        continue
    for r in rep["results"]:
        if not r.get("skipped"):
            r["part"] = os.path.basename(f).split("-")[0]
            rows[(r["function"], r["engine"])] = r
            if r["function"] not in order:
                order.append(r["function"])

def g(fn, e, k):
    r = rows.get((fn, e))
    return r[k] if r else None

def fmt_us(x):
    return "-" if x is None else (f"{x:.0f} µs" if x < 1000 else f"{x / 1000:.2f} ms")

def fmt_ms(x):
    return "-" if x is None else (f"{x:.1f} ms" if x < 1000 else f"{x / 1000:.2f} s")

def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"

print("| function | trials | wazero warm p50 / p99 | wasmtime warm p50 / p99 | bare warm p50 / p99 | native warm p50 | wazero/wasmtime warm | wasmtime/bare warm | wazero cold p50 | wasmtime cold p50 | bare cold p50 | wazero/wasmtime cold | wasmtime/bare cold |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for fn in order:
    w = {e: (g(fn, e, "warm_p50_us"), g(fn, e, "warm_p99_us"), g(fn, e, "cold_p50_ms")) for e in ["wazero", "wasmtime", "bare", "native"]}
    print(f"| {fn} | {g(fn, 'wazero', 'trials')} | {fmt_us(w['wazero'][0])} / {fmt_us(w['wazero'][1])} | {fmt_us(w['wasmtime'][0])} / {fmt_us(w['wasmtime'][1])} | "
          f"{fmt_us(w['bare'][0])} / {fmt_us(w['bare'][1])} | {fmt_us(w['native'][0])} | {ratio(w['wazero'][0], w['wasmtime'][0])} | {ratio(w['wasmtime'][0], w['bare'][0])} | "
          f"{fmt_ms(w['wazero'][2])} | {fmt_ms(w['wasmtime'][2])} | {fmt_ms(w['bare'][2])} | {ratio(w['wazero'][2], w['wasmtime'][2])} | {ratio(w['wasmtime'][2], w['bare'][2])} |")
