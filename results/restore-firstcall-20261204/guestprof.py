# Compares the guest (JIT) functions sampled by perf over first calls (first.script, from perf script -F ip,sym) with warm calls (argv[1] map, warm.script); perf data not kept (170 MB).
import collections,bisect,sys
def prof(script,mapf):
    ents=[]
    for l in open(mapf):
        a,sz,n=l.split(' ',2); ents.append((int(a,16),int(sz,16),n.strip()))
    ents.sort(); starts=[e[0] for e in ents]
    lo,hi=ents[0][0], ents[-1][0]+ents[-1][1]
    c=collections.Counter()
    with open(script) as f:
        first=True
        for line in f:
            line=line.strip()
            if not line: first=True; continue
            if first:
                first=False
                ip=int(line.split(' ',1)[0],16)
                if lo<=ip<hi:
                    i=bisect.bisect_right(starts,ip)-1
                    c[ents[i][2]]+=1
    return c
F=prof('first.script','first.map')
W=prof('/tmp/warm.script',sys.argv[1])
tf,tw=sum(F.values()),sum(W.values())
print('first total',tf,'warm total',tw,'per warm call (diff/10)',(tw-tf)/10)
warm1={k:(W[k]-F[k])/10 for k in set(W)|set(F)}
rows=sorted(F, key=lambda k:-F[k])[:45]
print('%-55s %7s %9s %6s'%('fn','first','1 warm','ratio'))
for k in rows:
    print('%-55s %7d %9.1f %6.1f'%(k[:55],F[k],warm1[k],F[k]/max(warm1[k],0.5)))
print('--- by excess (first - 2 warm calls) ---')
ex=sorted(F, key=lambda k: -(F[k]-2*warm1.get(k,0)))
tot=sum(F[k]-2*warm1.get(k,0) for k in F)
print('total excess', tot)
import re
for k in ex[:25]: print('%-55s %7.0f'%(k[:55], F[k]-2*warm1.get(k,0)))
gc=[k for k in F if re.search(r'gc|sweep|scan|mark|scav|Sweep|Mark', k)]
print('gc-ish total first', sum(F[k] for k in gc), 'warm1', sum(warm1.get(k,0) for k in gc))
for k in sorted(gc,key=lambda k:-F[k])[:15]: print('  %-50s %5d %6.1f'%(k[:50],F[k],warm1.get(k,0)))
