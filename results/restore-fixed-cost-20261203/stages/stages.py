import sys,statistics
def trials(path):
    lines=[l.split() for l in open(path).read().split('\n') if l.startswith('PROBE')]
    out=[];cur=None
    for _,n,t in lines:
        t=float(t)
        if n=='worker.preprepare': cur={};out.append(cur)
        if cur is not None and n not in cur: cur[n]=t
    return [c for c in out if 'checked' in c and 'region' in c]
def first(c,*names):
    for n in names:
        if n in c: return c[n]
    return None
stages=[
 ('region get (pool or mmap)','worker.preprepare','region'),
 ('prepare frame + ws.json read/parse','region','wsmeta'),
 ('open memory.img + pages.crc for the pager','wsmeta','pagersource'),
 ('userfaultfd open','pagersource','uffd.open'),
 ('fill path: start of fill goroutine','uffd.open','scrub.start'),
 ('fill path: scrub reused region + open ws.img','scrub.start','ws.opened'),
 ('fill path: read + check working set (2 readers)','ws.opened','fill.done'),
 ('fill path: register','fill.done','register'),
 ('pager path: session hand-off (from uffd open)','uffd.open','attach.done'),
 ('join: wait for the longer path (from uffd open)','uffd.open','attached'),
 ('engine: restore module lookup + state check','prepared','e.config'),
 ('engine: wazero InstantiateModule','e.config','e.instantiated'),
 ('engine: grow + set globals','e.instantiated','e.globals'),
 ('engine: thaw_on_restore + return','e.globals','engine.restored'),
 ('first call (exec)','invoke.start','invoke.done'),
 ('after the call: checkMemory, restore stats','invoke.done','checked'),
 ('total from after drop-cache to checked','worker.preprepare','checked'),
]
runs=[trials(p) for p in sys.argv[1:]]
print('| stage | '+' | '.join(sys.argv[1:])+' |')
print('|---|'+'---|'*len(runs))
for name,a,b in stages:
    row=[]
    for tr in runs:
        d=[c[b]-c[a] for c in tr if a in c and b in c]
        row.append(f"{statistics.median(d):.2f}" if d else '-')
    print(f"| {name} | "+' | '.join(row)+' |')
print('trials:',[len(t) for t in runs])
