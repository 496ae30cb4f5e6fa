#!/usr/bin/env python3
"""Tables of the interleaved A/B in this directory: p50 and p99 per run, medians, after/before,
the per-stage medians of bulk, and each binary's best mode against the floor."""
import glob, json, os, statistics as st, sys
D = os.path.dirname(os.path.abspath(__file__))
runs = {}  # (engine, version) -> [json per round]
for p in sorted(glob.glob(os.path.join(D, 'restore-*-*-*.json'))):
    _, eng, ver, rnd = os.path.basename(p)[:-5].split('-')
    try:
        runs.setdefault((eng, ver), []).append(json.load(open(p)))
    except json.JSONDecodeError:
        print('skipping', p, file=sys.stderr)
med = st.median
f2 = lambda xs: ', '.join('%.2f' % x for x in xs)
for eng in ('wazero', 'wasmtime'):
    b, a = runs.get((eng, 'before'), []), runs.get((eng, 'after'), [])
    if not b or not a:
        continue
    print(f'\n#### {eng} ({len(b)} runs before, {len(a)} after)\n')
    print('| function | mode | before p50 per run (ms) | after p50 per run (ms) | median before | median after | after/before | p99 median before | p99 median after |')
    print('|---|---|---|---|---|---|---|---|---|')
    keys = [(r['function'], r['mode']) for r in b[0]['results']]
    for fn, mode in keys:
        get = lambda rs, k: [r[k] for j in rs for r in j['results'] if (r['function'], r['mode']) == (fn, mode)]
        pb, pa = get(b, 'p50_ms'), get(a, 'p50_ms')
        qb, qa = get(b, 'p99_ms'), get(a, 'p99_ms')
        print(f'| {fn} | {mode} | {f2(pb)} | {f2(pa)} | {med(pb):.2f} | {med(pa):.2f} | {med(pa)/med(pb):.2f} | {med(qb):.2f} | {med(qa):.2f} |')
    print('\nStages of bulk, medians of the per-run p50 (ms); "instantiate" after the change is what the engine adds once the memory is ready:\n')
    print('| function | version | map | prefetch | instantiate | exec (first call) | start | p50 |')
    print('|---|---|---|---|---|---|---|---|')
    for fn in dict.fromkeys(k[0] for k in keys):
        for ver, rs in (('before', b), ('after', a)):
            rr = [r for j in rs for r in j['results'] if (r['function'], r['mode']) == (fn, 'bulk')]
            m = lambda k: med([r[k] for r in rr])
            print(f"| {fn} | {ver} | {m('map_p50_ms'):.2f} | {m('prefetch_p50_ms'):.2f} | {m('instantiate_p50_ms'):.2f} | {m('exec_p50_ms'):.2f} | {m('start_p50_ms'):.2f} | {m('p50_ms'):.2f} |")
    print('\nFloor (cold read of ws.img + one warm call) and the best mode against it:\n')
    print('| function | floor per run, all runs (ms) | median floor | warm call median | best before / floor, per run | best after / floor, per run | median best before / median floor | median best after / median floor |')
    print('|---|---|---|---|---|---|---|---|')
    for fn in dict.fromkeys(k[0] for k in keys):
        def per_run(rs):
            out = []
            for j in rs:
                fl = [p['physical_plus_warm_ms'] for p in j['physical'] if p['function'] == fn][0]
                best = min(r['p50_ms'] for r in j['results'] if r['function'] == fn)
                out.append((fl, best))
            return out
        rb, ra = per_run(b), per_run(a)
        floors = [x[0] for x in rb + ra]
        warm = [p['warm_p50_ms'] for j in b + a for p in j['physical'] if p['function'] == fn]
        mf = med(floors)
        print(f"| {fn} | {f2(floors)} | {mf:.2f} | {med(warm):.2f} | {', '.join('%.1f' % (x[1]/x[0]) for x in rb)} | {', '.join('%.1f' % (x[1]/x[0]) for x in ra)} | {med([x[1] for x in rb])/mf:.2f}x | {med([x[1] for x in ra])/mf:.2f}x |")
