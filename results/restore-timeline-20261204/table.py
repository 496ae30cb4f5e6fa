#!/usr/bin/env python3
"""Summarise run-*.json into table.md: per round and function, the p50 of each start, the first
call (exec) of each start against a warm one, bulk/floor, and bulk's timeline."""
import glob, json, os
here = os.path.dirname(os.path.abspath(__file__))
runs = sorted(glob.glob(os.path.join(here, 'run-*.json')))
out = ['# restore timeline, wasmtime (run.sh; meta.txt)', '',
       '| round | function | cold ms | eager ms | bulk ms | warm ms | exec: eager / bulk / warm (ms) | floor ms | bulk / floor |',
       '|---|---|---|---|---|---|---|---|---|']
tl = {}
for i, path in enumerate(runs, 1):
    rep = json.load(open(path))
    by = {(r['function'], r['mode']): r for r in rep['results']}
    phys = {p['function']: p for p in rep['physical']}
    for fn in sorted({r['function'] for r in rep['results']}):
        g = lambda m, k='p50_ms': by.get((fn, m), {}).get(k, float('nan'))
        out.append('| %d | %s | %.2f | %.2f | %.2f | %.3f | %.3f / %.3f / %.3f | %.2f | %.2f |' % (
            i, fn, g('cold'), g('eager'), g('bulk'), g('warm'), g('eager', 'exec_p50_ms'), g('bulk', 'exec_p50_ms'),
            g('warm', 'exec_p50_ms'), phys[fn]['physical_plus_warm_ms'], rep['ratios'][fn]['bulk/physical+warm']))
        for p in by.get((fn, 'bulk'), {}).get('timeline', []):
            tl.setdefault(fn, {}).setdefault(p['point'], []).append(p['p50_us'])
out += ['', '`bulk` timeline, µs from the start (p50 of each point\'s offset), one value per round:', '']
for fn, pts in tl.items():
    out.append('- %s: ' % fn + ', '.join('%s %s' % (k, '/'.join('%.0f' % v for v in vs)) for k, vs in pts.items()))
open(os.path.join(here, 'table.md'), 'w').write('\n'.join(out) + '\n')
print('\n'.join(out))
