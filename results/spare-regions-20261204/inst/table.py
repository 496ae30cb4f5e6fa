#!/usr/bin/env python3
"""Start p50 per round of the two spare variants (run from the parent directory):
python3 inst/table.py > inst/table.txt"""
import re, statistics as st
def load(p):
    d = {}
    for line in open(p, newline="").read().split("\n"):
        m = re.search(r"round=(\d+) variant=(\w+)", line); s = re.search(r"start;dur=([\d.]+)", line)
        if m and s: d.setdefault((int(m[1]), m[2]), []).append(float(s[1]))
    return d
mem, inst = load("inst/raw-mem.txt"), load("inst/raw-inst.txt")
print("start p50 ms per round: spare keeps memory only (5acb6e5) / spare keeps an instance too / off (each binary's own)")
rs = []
for r in sorted({k[0] for k in mem}):
    a, b = st.median(mem[(r, "on")]), st.median(inst[(r, "on")])
    rs.append(b / a)
    print(f"round {r}: memory only {a:.3f}, with instance {b:.3f}, off {st.median(mem[(r,'off')]):.3f} / {st.median(inst[(r,'off')]):.3f}; instance/memory {b/a:.2f}")
print(f"instance/memory start p50, median of rounds: {st.median(rs):.2f}")
