import json, glob, statistics, sys, os
d = sys.argv[1]
def load(kind, v):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{d}/{kind}-{v}-*.json"))]
out = []
out.append("## bench restore: medians of the per-run p50 (ms), and the targets' ratios per run\n")
for fn in ["initheavy", "initheavy-gather"]:
    out.append(f"### {fn}\n")
    out.append("| mode | before p50 | after p50 | after/before |")
    out.append("|---|---:|---:|---:|")
    for mode in ["cold","eager","mmap","lazy","reap","bulk","warm"]:
        vals = {}
        for v in ["before","after"]:
            xs = [r["p50_ms"] for run in load("restore", v) for r in run["results"] if r["function"]==fn and r["mode"]==mode]
            vals[v] = statistics.median(xs) if xs else float('nan')
        out.append(f"| {mode} | {vals['before']:.2f} | {vals['after']:.2f} | {vals['after']/vals['before']:.2f}x |")
    out.append("")
    out.append("| target | before (runs) | after (runs) |")
    out.append("|---|---|---|")
    for key, label in [("lazy/reap","reap ≥ 4x faster than lazy"),("reap/bulk","bulk at least as fast as reap (≥ 1)"),("cold/bulk","best ≥ 20x faster than cold (cold/bulk)"),("bulk/physical+warm","bulk within 1.5x of physical + warm")]:
        row = []
        for v in ["before","after"]:
            row.append(" / ".join(f"{run['ratios'][fn][key]:.2f}" for run in load("restore", v)))
        out.append(f"| {label} | {row[0]} | {row[1]} |")
    out.append("")
out.append("## bench store (initheavy-gather): p50 ms per run, and remote/local, warm/local\n")
out.append("| version | mode | local | warm cache | remote | warm/local | remote/local |")
out.append("|---|---|---|---|---|---|---|")
for v in ["before","after"]:
    for mode in ["reap","bulk"]:
        cells = {s: [] for s in ["local","warm-cache","remote"]}
        for run in load("store", v):
            for r in run["results"]:
                if r["mode"]==mode: cells[r["setting"]].append(r["p50_ms"])
        ratios_w = [w/l for w,l in zip(cells["warm-cache"], cells["local"])]
        ratios_r = [r/l for r,l in zip(cells["remote"], cells["local"])]
        f = lambda xs: " / ".join(f"{x:.1f}" for x in xs)
        g = lambda xs: " / ".join(f"{x:.2f}" for x in xs)
        out.append(f"| {v} | {mode} | {f(cells['local'])} | {f(cells['warm-cache'])} | {f(cells['remote'])} | {g(ratios_w)} | {g(ratios_r)} |")
print("\n".join(out))
