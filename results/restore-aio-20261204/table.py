import json,sys,glob,statistics,collections
out=sys.argv[1]
rows=collections.defaultdict(list)
for f in sorted(glob.glob(out+'/*.json')):
    v=f.split('/')[-1].split('-',1)[1][:-5]
    d=json.load(open(f))
    phys={p['function']:p for p in d['physical']}
    for r in d['results']:
        t={x['point']:x['p50_us'] for x in r['timeline']}
        fl=phys[r['function']]['physical_plus_warm_ms']
        rows[(r['function'],v)].append((r['p50_ms'],r['p50_ms']/fl,t.get('read_issued',0),t.get('read_checked',0)-t.get('read_done',0),t.get('call',0),t.get('x_handled',0)-t.get('x_written',0),t.get('response',0)))
for k in sorted(rows):
    xs=rows[k]
    med=lambda i: statistics.median([x[i] for x in xs])
    print(k, 'n=%d p50=%.3f ratio=%.2f issued=%.0f chk=%.0f call=%.0f resp=%.0f'%(len(xs),med(0),med(1),med(2),med(3),med(4),med(6)), 'ratios', [round(x[1],2) for x in xs])
# The per-run medians and ratios above; the timeline medians below.
pts = collections.defaultdict(lambda: collections.defaultdict(list))
for f in sorted(glob.glob(out + '/*.json')):
    v = f.split('/')[-1].split('-', 1)[1][:-5]
    d = json.load(open(f))
    for r in d['results']:
        for x in r['timeline']:
            pts[(r['function'], v)][x['point']].append(x['p50_us'])
for k in sorted(pts):
    print(k, ' '.join('%s=%.0f' % (p, statistics.median(v)) for p, v in sorted(pts[k].items(), key=lambda kv: statistics.median(kv[1]))))
