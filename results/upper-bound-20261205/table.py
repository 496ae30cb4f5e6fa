import glob, json, re, sys
out=sys.argv[1]
rows={}
for p in sorted(glob.glob(out+"/r*-*.json")):
    m=re.search(r"r(\d+)-(\w)\.json",p); rnd,v=int(m.group(1)),m.group(2)
    d=json.load(open(p))
    fl={x['function']:x['physical_plus_warm_ms'] for x in d['physical']}
    for r in d['results']:
        if r['mode']!='bulk': continue
        rows.setdefault((r['function'],v),[]).append((rnd, r['p50_ms'], r['p50_ms']/fl[r['function']]))
for (f,v),xs in sorted(rows.items()):
    xs.sort()
    print(f"{f:15s} {v}  p50 " + " ".join(f"{p:.3f}" for _,p,_ in xs) + "   /floor " + " ".join(f"{q:.2f}" for _,_,q in xs))
fs=sorted(set(f for f,_ in rows))
vs=sorted(set(v for _,v in rows))
for f in fs:
    for v in vs[1:]:
        a=dict((r,p) for r,p,_ in rows[(f,vs[0])]); b=dict((r,p) for r,p,_ in rows[(f,v)])
        rat=sorted(b[r]/a[r] for r in a if r in b)
        print(f"{f:15s} {v}/{vs[0]} " + " ".join(f"{x:.2f}" for x in rat) + f"  median {rat[len(rat)//2]:.2f}")
