#!/usr/bin/env python3
"""Deploy stages per binary, engine and function from ab.sh's JSON (thaw bench restore's
"deploys"): the median over rounds of each stage, in ms, with the per-round values of the total
and of boot+snapshot, and wazero/wasmtime of boot+snapshot per binary and round."""
import glob, json, os, statistics, sys
d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
runs = {}
for f in sorted(glob.glob(os.path.join(d, '*-*-*.json'))):
    name = os.path.basename(f)[:-5]
    b, e, r = name.split('-')
    for dep in json.load(open(f)).get('deploys', []):
        runs.setdefault((b, dep['function'], e), {})[int(r)] = dep
med = lambda xs: statistics.median(xs)
print('| binary | function | engine | total | compile | boot | snapshot | commit | boot+snapshot (per round) |')
print('|---|---|---|---:|---:|---:|---:|---:|---|')
for (b, fn, e), rs in sorted(runs.items()):
    st = lambda k: med([x[k + '_ms'] for x in rs.values()])
    bs = [round(x['boot_ms'] + x['snapshot_ms']) for _, x in sorted(rs.items())]
    print(f"| {b} | {fn} | {e} | {st('total'):.0f} | {st('compile'):.0f} | {st('boot'):.0f} | {st('snapshot'):.0f} | {st('commit'):.0f} | {', '.join(map(str, bs))} |")
print()
for (b, fn, e), rs in sorted(runs.items()):
    if e != 'wazero' or (b, fn, 'wasmtime') not in runs:
        continue
    wt = runs[(b, fn, 'wasmtime')]
    ratios = [f"{(rs[r]['boot_ms'] + rs[r]['snapshot_ms']) / (wt[r]['boot_ms'] + wt[r]['snapshot_ms']):.2f}" for r in sorted(rs) if r in wt]
    print(f"{b} {fn}: boot+snapshot wazero/wasmtime per round: {' / '.join(ratios)}")
