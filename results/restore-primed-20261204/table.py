# Prints table.md's tables from the JSON files of ab.sh: python3 table.py DIR
import json, glob, sys
d0 = sys.argv[1]
fns = ['hello', 'jsontransform', 'initheavy', 'initheavy-gather']
data = {}
for f in glob.glob(d0 + '/*.json'):
    v, e, r = f.split('/')[-1][:-5].split('-')
    d = json.load(open(f))
    for x in d['results']:
        data[(v, e, int(r), x['function'], x['mode'])] = x
    for p in d['physical']:
        data[(v, e, int(r), p['function'], 'floor')] = p
rounds = sorted({k[2] for k in data})
fmt = lambda xs: ', '.join('%.2f' % x for x in xs)
for e in ['wasmtime', 'wazero']:
    print('##', e)
    print()
    print('| function | bulk p50 A | bulk p50 B | B/A | first call (exec) A | B | bulk / floor A | bulk / floor B | B floor: read + warm |')
    print('|---|---|---|---|---|---|---|---|---|')
    for fn in fns:
        a = [data[('A', e, r, fn, 'bulk')]['p50_ms'] for r in rounds]
        b = [data[('B', e, r, fn, 'bulk')]['p50_ms'] for r in rounds]
        xa = [data[('A', e, r, fn, 'bulk')]['exec_p50_ms'] for r in rounds]
        xb = [data[('B', e, r, fn, 'bulk')]['exec_p50_ms'] for r in rounds]
        fa = [data[('A', e, r, fn, 'floor')]['physical_plus_warm_ms'] for r in rounds]
        fb = [data[('B', e, r, fn, 'floor')]['physical_plus_warm_ms'] for r in rounds]
        mark = lambda xs: ', '.join('%.2f%s' % (x, '' if x <= 1.5 else ' ✘') for x in xs)
        rw = '; '.join('%.2f + %.2f' % (data[('B', e, r, fn, 'floor')]['ws_read_p50_ms'], data[('B', e, r, fn, 'floor')]['warm_p50_ms']) for r in rounds)
        print('| %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (fn, fmt(a), fmt(b), fmt([y / x for x, y in zip(a, b)]), fmt(xa), fmt(xb),
              mark([x / y for x, y in zip(a, fa)]), mark([x / y for x, y in zip(b, fb)]), rw))
    print()
