#!/usr/bin/env python3
"""Per round and variant: median and p99 of the client's time per request
(µs), and B/A of the medians. usage: table.py OUTDIR"""
import re, sys, statistics as st
rows = {}
for line in open(sys.argv[1] + "/raw.txt"):
    m = re.search(r"round=(\d+) variant=(\w) total=([\d.]+)", line)
    if m:
        rows.setdefault((int(m[1]), m[2]), []).append(float(m[3]) * 1e6)
def p99(xs):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]
ratios, r99 = [], []
print(f"{'round':>5} {'A p50':>7} {'B p50':>7} {'A p99':>7} {'B p99':>7} {'B/A p50':>8}")
for rnd in sorted({k[0] for k in rows}):
    a, b = rows.get((rnd, "A")), rows.get((rnd, "B"))
    if not (a and b): continue
    ratios.append(st.median(b) / st.median(a)); r99.append(p99(b) / p99(a))
    print(f"{rnd:>5} {st.median(a):>7.0f} {st.median(b):>7.0f} {p99(a):>7.0f} {p99(b):>7.0f} {ratios[-1]:>8.2f}")
print(f"B/A p50, median of rounds: {st.median(ratios):.2f}; B/A p99: {st.median(r99):.2f}")
