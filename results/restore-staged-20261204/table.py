import json,glob,sys,statistics
d0=sys.argv[1]
fns=['hello','jsontransform','initheavy','initheavy-gather']
modes=['eager','mmap','lazy','reap','bulk']
data={}
for f in glob.glob(d0+'/*.json'):
    v,e,r=f.split('/')[-1][:-5].split('-')
    d=json.load(open(f))
    ph={p['function']:p for p in d['physical']}
    for x in d['results']:
        data[(v,e,int(r),x['function'],x['mode'])]=x['p50_ms']
    for fn,p in ph.items():
        data[(v,e,int(r),fn,'floor')]=p['physical_plus_warm_ms']
        data[(v,e,int(r),fn,'read')]=p['ws_read_p50_ms']
        data[(v,e,int(r),fn,'warm')]=p['warm_p50_ms']
rounds=sorted({k[2] for k in data})
for e in ['wasmtime','wazero']:
    print('##',e)
    print('| function | bulk A per round | bulk B per round | B/A per round | B bulk/floor(B) per round | B floor: read+warm |')
    print('|---|---|---|---|---|---|')
    for fn in fns:
        a=[data[('A',e,r,fn,'bulk')] for r in rounds]
        b=[data[('B',e,r,fn,'bulk')] for r in rounds]
        fl=[data[('B',e,r,fn,'floor')] for r in rounds]
        rw=['%.2f+%.2f'%(data[('B',e,r,fn,'read')],data[('B',e,r,fn,'warm')]) for r in rounds]
        fmt=lambda xs:', '.join('%.2f'%x for x in xs)
        print('| %s | %s | %s | %s | %s | %s |'%(fn,fmt(a),fmt(b),fmt([y/x for x,y in zip(a,b)]),', '.join(('%.2f'%(y/z))+('' if y/z<=1.5 else ' ✘') for y,z in zip(b,fl)),'; '.join(rw)))
    print()
    print('| function | ' + ' | '.join(m+' B/A' for m in modes if m!='bulk')+' |')
    print('|---|'+'---|'*4)
    for fn in fns:
        row=[]
        for m in modes:
            if m=='bulk': continue
            row.append(', '.join('%.2f'%(data[('B',e,r,fn,m)]/data[('A',e,r,fn,m)]) for r in rounds))
        print('| %s | %s |'%(fn,' | '.join(row)))
    print()
