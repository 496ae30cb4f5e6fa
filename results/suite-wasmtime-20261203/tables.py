#!/usr/bin/env python3
"""Markdown tables of docs/experiments.md from a thaw bench suite run directory.

Usage: tables.py RUNDIR. Prints the end-to-end table (p50 (p99) per mode, lazy
faults, WS, cold init, cold/bulk, lazy/bulk) and the stage table (p50 of the
start and exec stages per mode). Percentiles are nearest-rank, as
internal/stats.Percentile: with 3 trials p50 is the median and p99 the maximum.
"""
import json, math, sys

run = sys.argv[1]
MODES = ["cold", "mmap", "lazy", "reap", "bulk", "warm"]

def pct(xs, p):
    s = sorted(xs)
    if not s:
        return float("nan")
    r = math.ceil(p * len(s) / 100)
    return s[min(max(r, 1), len(s)) - 1]

def f(v):
    if v != v:
        return "–"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v

trials = [json.loads(l) for l in open(run + "/invocations.jsonl")]
deps = {d["function"]: d for d in json.load(open(run + "/deployments.json"))}
fns = []
by = {}
for t in trials:
    if t["function"] not in fns:
        fns.append(t["function"])
    if not (200 <= t.get("status", 0) < 300):
        continue
    by.setdefault((t["function"], t["mode"]), []).append(t)

def col(fn, mode, key):
    return [t.get(key, 0) for t in by.get((fn, mode), [])]

print("| function | cold | mmap | lazy | reap | bulk | warm | lazy faults | WS MiB | cold init | cold/bulk | lazy/bulk |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for fn in fns:
    p50 = {m: pct(col(fn, m, "latency_ms"), 50) for m in MODES}
    cells = ["%s (%s)" % (f(p50[m]), f(pct(col(fn, m, "latency_ms"), 99))) for m in MODES]
    faults = pct(col(fn, "lazy", "faults"), 50)
    ws = deps.get(fn, {}).get("ws_bytes", float("nan")) / 2**20
    init = pct([t.get("stages_ms", {}).get("init", 0) for t in by.get((fn, "cold"), [])], 50)
    print("| %s | %s | %d | %.2f | %s | %.2f | %.2f |" % (fn, " | ".join(cells), faults, ws, f(init),
          p50["cold"] / p50["bulk"], p50["lazy"] / p50["bulk"]))
print()
print("| function | cold start | mmap start | lazy start | reap start | bulk start | lazy exec | reap exec | bulk exec | warm exec |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for fn in fns:
    starts = [f(pct(col(fn, m, "start_ms"), 50)) for m in ["cold", "mmap", "lazy", "reap", "bulk"]]
    execs = [f(pct(col(fn, m, "exec_ms"), 50)) for m in ["lazy", "reap", "bulk", "warm"]]
    print("| %s | %s | %s |" % (fn, " | ".join(starts), " | ".join(execs)))
fail = [t for t in trials if not (200 <= t.get("status", 0) < 300) or t.get("fallback")]
print()
print("failed or fallback trials:", len(fail), [(t["function"], t["mode"], t.get("status"), t.get("fallback")) for t in fail])
