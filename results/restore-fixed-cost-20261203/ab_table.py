import json,glob,statistics,collections,sys
d=sys.argv[1]
res=collections.defaultdict(lambda: collections.defaultdict(list))
phys=collections.defaultdict(lambda: collections.defaultdict(list))
for f in sorted(glob.glob(d+'/restore-*-*.json')):
    v=f.split('/')[-1].split('-')[1]
    r=json.load(open(f))
    for x in r['results']:
        res[(x['function'],x['mode'])][v].append(x['p50_ms'])
    for p in r['physical']:
        phys[p['function']][v].append(p['physical_plus_warm_ms'])
fns=sorted({k[0] for k in res})
print('| function | mode | before p50 per run (ms) | after p50 per run (ms) | median before | median after | after/before |')
print('|---|---|---|---|---|---|---|')
for fn in fns:
    for mode in ['bulk','reap','eager']:
        k=(fn,mode)
        if k not in res: continue
        b,a=res[k]['before'],res[k]['after']
        mb,ma=statistics.median(b),statistics.median(a)
        print(f"| {fn} | {mode} | {', '.join(f'{x:.2f}' for x in b)} | {', '.join(f'{x:.2f}' for x in a)} | {mb:.2f} | {ma:.2f} | {ma/mb:.2f} |")
print()
print('| function | floor before (ms) | floor after (ms) | best before / floor | best after / floor |')
print('|---|---|---|---|---|')
for fn in fns:
    fb,fa=statistics.median(phys[fn]['before']),statistics.median(phys[fn]['after'])
    bb=min(statistics.median(res[(fn,m)]['before']) for m in ['bulk','reap','eager'] if (fn,m) in res)
    ba=min(statistics.median(res[(fn,m)]['after']) for m in ['bulk','reap','eager'] if (fn,m) in res)
    # ratio per run of same binary: best p50 of the run / that run's floor
    def perrun(v):
        rs=[]
        for f in sorted(glob.glob(d+f'/restore-{v}-*.json')):
            r=json.load(open(f))
            best=min(x['p50_ms'] for x in r['results'] if x['function']==fn)
            fl=[p['physical_plus_warm_ms'] for p in r['physical'] if p['function']==fn][0]
            rs.append(best/fl)
        return rs
    rb,ra=perrun('before'),perrun('after')
    print(f"| {fn} | {fb:.2f} | {fa:.2f} | {statistics.median(rb):.2f}x ({', '.join(f'{x:.1f}' for x in rb)}) | {statistics.median(ra):.2f}x ({', '.join(f'{x:.1f}' for x in ra)}) |")
