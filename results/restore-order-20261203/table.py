#!/usr/bin/env python3
"""bulk p50 (and stages) per variant, engine and function from ab.sh's JSON, with the floor."""
import glob, json, os, statistics, sys
d = os.path.dirname(os.path.abspath(__file__))
rows = {}
floors = {}
for f in sorted(glob.glob(os.path.join(d, '[AB]-*.json'))):
    v, e, r = os.path.basename(f)[:-5].split('-')
    j = json.load(open(f))
    for x in j['results']:
        if x['mode'] == 'bulk':
            rows.setdefault((e, x['function'], v), []).append(x)
    for p in j['physical']:
        floors.setdefault((e, p['function']), []).append(p)
med = statistics.median
print('| engine | function | variant | p50 per run (ms) | median p50 | map | prefetch | instantiate | exec |')
print('|---|---|---|---|---|---|---|---|---|')
for (e, fn, v), xs in sorted(rows.items()):
    g = lambda k: med([x.get(k, 0) for x in xs])
    print(f"| {e} | {fn} | {v} | {', '.join('%.2f' % x['p50_ms'] for x in xs)} | {g('p50_ms'):.3f} | {g('map_p50_ms'):.3f} | {g('prefetch_p50_ms'):.3f} | {g('instantiate_p50_ms'):.3f} | {g('exec_p50_ms'):.3f} |")
print()
print('| engine | function | variant | bulk / floor per run | median |')
print('|---|---|---|---|---|')
ratios = {}
for f in sorted(glob.glob(os.path.join(d, '[AB]-*.json'))):
    v, e, r = os.path.basename(f)[:-5].split('-')
    j = json.load(open(f))
    for fn, rs in j['ratios'].items():
        ratios.setdefault((e, fn, v), []).append(rs['bulk/physical+warm'])
for k, xs in sorted(ratios.items()):
    print(f"| {k[0]} | {k[1]} | {k[2]} | {', '.join('%.2f' % x for x in xs)} | {med(xs):.2f} |")
