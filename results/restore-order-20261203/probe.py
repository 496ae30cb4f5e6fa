import sys, statistics, collections
# groups of PROBE lines, each starting at t0
groups=[]; cur=None
for line in open(sys.argv[1]):
    if not line.startswith('PROBE '): continue
    _, what, ns = line.split()
    ns=int(ns)
    if what=='t0':
        cur={'t0':ns}; groups.append(cur)
    elif cur is not None and what not in cur:
        cur[what]=ns
keys=collections.OrderedDict()
for g in groups:
    for k in g: keys[k]=1
print(len(groups),'restores')
for k in keys:
    vals=[(g[k]-g['t0'])/1000 for g in groups if k in g]
    if vals: print(f"{k:14s} n={len(vals):3d} median {statistics.median(vals):8.1f} us  p10 {sorted(vals)[len(vals)//10]:8.1f}")
