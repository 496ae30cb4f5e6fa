import sys,statistics,collections
groups=[];cur=None
for l in open(sys.argv[1]):
    if not l.startswith('PROBE '): continue
    _,n,v=l.split(); v=float(v)
    if n=='direct-go' or n=='started':
        if n=='direct-go' or cur is None or 'started' in cur:
            cur=collections.OrderedDict(); groups.append(cur)
    if cur is None: continue
    if n in cur: continue
    cur[n]=v
    if n=='call-end': cur=None
groups=groups[2:]
keys=[]
for g in groups:
    for k in g:
        if k not in keys: keys.append(k)
rows=[]
for k in keys:
    vs=[g[k] for g in groups if k in g]
    rows.append((statistics.median(vs),k,len(vs)))
for m,k,n in sorted(rows):
    print(f"{k:16s} n={n:3d} median {m:8.1f} us")
