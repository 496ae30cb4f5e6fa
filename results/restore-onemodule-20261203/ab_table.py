#!/usr/bin/env python3
"""Tables of the wazero/wasmtime restore A/B (ab.sh): per function and mode the median over rounds of
each run's p50 and p99, wazero/wasmtime ratios, the bench restore targets per run, and deploy stages."""
import glob, json, statistics, sys, os

d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
E = ["wazero", "wasmtime"]

def runs(e):
    out = []
    for f in sorted(glob.glob(f"{d}/restore-{e}-*.json")):
        try:
            out.append(json.load(open(f)))
        except ValueError:
            pass  # a run cut short
    return out

R = {e: runs(e) for e in E}
med = statistics.median
fns = [x["function"] for x in R["wazero"][0]["deploys"]] if R["wazero"] else []
print(f"runs: wazero {len(R['wazero'])}, wasmtime {len(R['wasmtime'])}\n")
for fn in fns:
    print(f"### {fn}\n")
    print("| mode | wazero p50 | wasmtime p50 | wazero/wasmtime p50 | wazero p99 | wasmtime p99 |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode in ["cold", "eager", "mmap", "lazy", "reap", "bulk", "warm"]:
        v = {}
        for e in E:
            xs = [r for run in R[e] for r in run["results"] if r["function"] == fn and r["mode"] == mode]
            v[e] = (med([x["p50_ms"] for x in xs]), med([x["p99_ms"] for x in xs])) if xs else (float("nan"),) * 2
        print(f"| {mode} | {v['wazero'][0]:.2f} | {v['wasmtime'][0]:.2f} | {v['wazero'][0] / v['wasmtime'][0]:.2f}x | {v['wazero'][1]:.2f} | {v['wasmtime'][1]:.2f} |")
    for e in E:
        ph = [p["physical_plus_warm_ms"] for run in R[e] for p in run["physical"] if p["function"] == fn]
        print(f"\nphysical + warm ({e}): median {med(ph):.2f} ms", end="")
    print("\n")
    print("| target (per run) | wazero | wasmtime |")
    print("|---|---|---|")
    for key, label, ok in [("lazy/reap", "reap ≥ 4x faster than lazy", lambda x: x >= 4),
                           ("reap/bulk", "bulk at least as fast as reap (≥ 1)", lambda x: x >= 1),
                           ("cold/bulk", "best ≥ 20x faster than cold (cold/bulk)", lambda x: x >= 20),
                           ("bulk/physical+warm", "bulk within 1.5x of physical + warm", lambda x: x <= 1.5)]:
        row = [" / ".join(f"{run['ratios'][fn][key]:.2f}{'' if ok(run['ratios'][fn][key]) else ' ✘'}" for run in R[e]) for e in E]
        print(f"| {label} | {row[0]} | {row[1]} |")
    # Bulk first response, wazero over wasmtime, pairing rounds.
    pairs = [(a, b) for a, b in zip(R["wazero"], R["wasmtime"])]
    rat = [next(x["p50_ms"] for x in a["results"] if x["function"] == fn and x["mode"] == "bulk") /
           next(x["p50_ms"] for x in b["results"] if x["function"] == fn and x["mode"] == "bulk") for a, b in pairs]
    print(f"\nbulk p50 wazero/wasmtime per round: {' / '.join(f'{x:.2f}' for x in rat)}\n")

print("### deploys (ms, median over runs; the snapshot stage includes compiling the restore module)\n")
print("| function | engine | total | compile | boot | snapshot | commit | boot+snapshot |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for fn in fns:
    for e in E:
        ds = [x for run in R[e] for x in run["deploys"] if x["function"] == fn]
        m = {k: med([x[k] for x in ds]) for k in ["total_ms", "compile_ms", "boot_ms", "snapshot_ms", "commit_ms"]}
        bs = med([x["boot_ms"] + x["snapshot_ms"] for x in ds])
        print(f"| {fn} | {e} | {m['total_ms']:.0f} | {m['compile_ms']:.0f} | {m['boot_ms']:.0f} | {m['snapshot_ms']:.0f} | {m['commit_ms']:.0f} | {bs:.0f} |")
for fn in fns:
    rat = [(a_["boot_ms"] + a_["snapshot_ms"]) / (b_["boot_ms"] + b_["snapshot_ms"])
           for a, b in zip(R["wazero"], R["wasmtime"])
           for a_ in a["deploys"] if a_["function"] == fn for b_ in b["deploys"] if b_["function"] == fn]
    print(f"\n{fn}: deploy boot+snapshot wazero/wasmtime per round: {' / '.join(f'{x:.2f}' for x in rat)}", end="")
print()
