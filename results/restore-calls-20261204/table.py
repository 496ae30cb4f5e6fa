# Prints table.md from the JSON files of ab.sh and final.sh: python3 table.py DIR
import json, glob, sys
d0 = sys.argv[1]
data = {}
for f in glob.glob(d0 + '/[ABC]-*.json'):
    v, e, r = f.split('/')[-1][:-5].split('-')
    d = json.load(open(f))
    for x in d['results']:
        data[(v, int(r), x['function'], x['mode'])] = x
    for p in d['physical']:
        data[(v, int(r), p['function'], 'floor')] = p
rounds = sorted({k[1] for k in data})
fmt = lambda xs, f='%.3f': ', '.join(f % x for x in xs)
print('## A/B/C (ab.sh), wasmtime, p50 per round')
print()
print('| function | version | warm request (ms) | bulk (ms) | bulk: instantiate stage | bulk: first call | floor (read + warm) | bulk / floor |')
print('|---|---|---|---|---|---|---|---|')
for fn in ['hello', 'jsontransform']:
    for v in 'ABC':
        g = lambda m, k: [data[(v, r, fn, m)][k] for r in rounds]
        b, fl = g('bulk', 'p50_ms'), g('floor', 'physical_plus_warm_ms')
        print('| %s | %s | %s | %s | %s | %s | %s | %s |' % (fn, v, fmt(g('warm', 'p50_ms'), '%.4f'), fmt(b), fmt(g('bulk', 'instantiate_p50_ms')),
              fmt(g('bulk', 'exec_p50_ms')), fmt(fl), fmt([x / y for x, y in zip(b, fl)], '%.2f')))
print()
print('## Every example at the head (final.sh): bulk p50 / floor per round')
print()
print('| engine | hello | jsontransform | initheavy | initheavy-gather |')
print('|---|---|---|---|---|')
fin = {}
for f in sorted(glob.glob(d0 + '/final-*.json')):
    _, e, r = f.split('/')[-1][:-5].split('-', 2)
    d = json.load(open(f))
    fl = {p['function']: p['physical_plus_warm_ms'] for p in d['physical']}
    for x in d['results']:
        if x['mode'] == 'bulk':
            fin.setdefault((e, x['function']), []).append(x['p50_ms'] / fl[x['function']])
for e in ['wasmtime', 'wazero']:
    print('| %s | %s |' % (e, ' | '.join(fmt(fin[(e, fn)], '%.2f') for fn in ['hello', 'jsontransform', 'initheavy', 'initheavy-gather'])))
