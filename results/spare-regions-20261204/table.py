#!/usr/bin/env python3
"""Median and p99 of start and first-call exec (ms) per variant and round,
and on/off ratios of the per-round medians. usage: table.py OUTDIR"""
import re, sys, statistics as st
rows = {}
for line in open(sys.argv[1] + "/raw.txt", newline="").read().split("\n"):
    m = re.search(r"round=(\d+) variant=(\w+)", line)
    s = re.search(r"start;dur=([\d.]+)", line)
    e = re.search(r"exec;dur=([\d.]+)", line)
    r = re.search(r"reused;desc=\"(\d+)\"", line)
    tot = re.search(r"total=([\d.]+)", line)
    if not (m and s and e):
        continue
    d = rows.setdefault((int(m[1]), m[2]), {"start": [], "exec": [], "total": [], "reused": 0, "n": 0})
    d["start"].append(float(s[1])); d["exec"].append(float(e[1])); d["total"].append(float(tot[1]) * 1e3)
    d["n"] += 1; d["reused"] += int(r is not None and r[1] != "0")
def p99(xs):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]
print(f"{'round':>5} {'variant':>7} {'n':>3} {'reused':>6} {'start p50':>9} {'start p99':>9} {'exec p50':>8} {'total p50':>9}")
ratios = {"start": [], "exec": [], "total": []}
for rnd in sorted({k[0] for k in rows}):
    for v in ("on", "off"):
        d = rows.get((rnd, v))
        if not d: continue
        print(f"{rnd:>5} {v:>7} {d['n']:>3} {d['reused']:>6} {st.median(d['start']):>9.3f} {p99(d['start']):>9.3f} {st.median(d['exec']):>8.3f} {st.median(d['total']):>9.3f}")
    if (rnd, "on") in rows and (rnd, "off") in rows:
        for k in ratios:
            ratios[k].append(st.median(rows[(rnd, "on")][k]) / st.median(rows[(rnd, "off")][k]))
for k, v in ratios.items():
    if v:
        print(f"on/off {k} p50 per round: " + ", ".join(f"{x:.2f}" for x in v) + f"; median {st.median(v):.2f}")
