#!/usr/bin/env python3
"""Tables of the A/B in this directory: bulk p50 per run for A and B, B/A, the floor
(A: buffered read + warm call; B: the faster of buffered and direct + warm call) and
bulk / floor per run. Usage: table.py DIR > table.md"""
import glob, json, os, statistics, sys

d = sys.argv[1] if len(sys.argv) > 1 else "."
runs = {}
for p in sorted(glob.glob(os.path.join(d, "[AB]-*-*.json"))):
    b, e, r = os.path.basename(p)[:-5].split("-")
    try:
        runs[(b, e, int(r))] = json.load(open(p))
    except Exception:
        pass
rounds = sorted({k[2] for k in runs})
fns = []
for rep in runs.values():
    for x in rep["results"]:
        if x["function"] not in fns:
            fns.append(x["function"])

def res(rep, fn, mode):
    for x in rep["results"]:
        if x["function"] == fn and x["mode"] == mode:
            return x

def phys(rep, fn):
    for x in rep["physical"]:
        if x["function"] == fn:
            return x

med = statistics.median
for e in ["wasmtime", "wazero"]:
    print(f"\n## {e}\n")
    print("| function | bulk p50 A (ms) | bulk p50 B | B/A (median of rounds) | floor A: read + warm | floor B: min(buffered, direct) + warm | bulk/floor A | bulk/floor B |")
    print("|---|---|---|---|---|---|---|---|")
    for fn in fns:
        a, bb, ratio, fa, fb, ra, rb = [], [], [], [], [], [], []
        for r in rounds:
            A, B = runs.get(("A", e, r)), runs.get(("B", e, r))
            if not A or not B or not res(A, fn, "bulk") or not res(B, fn, "bulk"):
                continue
            xa, xb = res(A, fn, "bulk")["p50_ms"], res(B, fn, "bulk")["p50_ms"]
            pa, pb = phys(A, fn), phys(B, fn)
            a.append(xa); bb.append(xb); ratio.append(xb / xa)
            fa.append(f"{pa['ws_read_p50_ms']:.2f}+{pa['warm_p50_ms']:.2f}")
            fb.append(f"min({pb['ws_read_buffered_p50_ms']:.2f}, {pb.get('ws_read_direct_p50_ms', 0):.2f})+{pb['warm_p50_ms']:.2f}")
            ra.append(xa / pa["physical_plus_warm_ms"]); rb.append(xb / pb["physical_plus_warm_ms"])
        if not a:
            continue
        f = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
        mark = lambda xs: ", ".join(f"{x:.2f}" + (" ✘" if x > 1.5 else "") for x in xs)
        print(f"| {fn} | {f(a)} | {f(bb)} | {med(ratio):.2f} ({f(ratio)}) | {'; '.join(fa)} | {'; '.join(fb)} | {mark(ra)} | {mark(rb)} |")
    print(f"\nOther modes, B/A of p50, median of rounds ({e}):\n")
    modes = ["cold", "eager", "mmap", "lazy", "reap", "warm"]
    print("| function | " + " | ".join(modes) + " |")
    print("|---|" + "---|" * len(modes))
    for fn in fns:
        cells = []
        for m in modes:
            rs = []
            for r in rounds:
                A, B = runs.get(("A", e, r)), runs.get(("B", e, r))
                if A and B and res(A, fn, m) and res(B, fn, m):
                    rs.append(res(B, fn, m)["p50_ms"] / res(A, fn, m)["p50_ms"])
            cells.append(f"{med(rs):.2f}" if rs else "-")
        print(f"| {fn} | " + " | ".join(cells) + " |")
