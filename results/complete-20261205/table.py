import sys, statistics as st, collections
rows = collections.defaultdict(list)
for l in open(sys.argv[1]):
    r, v, fn, *xs = l.split()
    if int(r) == 1: continue  # round 1: each function's first restore records or warms up
    rows[(fn, v)].append([float(x) for x in xs])
def pct(xs, q):
    xs = sorted(xs); return xs[min(len(xs)-1, int(q*len(xs)))]
print("| function | binary | rounds | first call p50 | calls 2-9 p50 | calls 2-9 p90 | calls 2-9 max |")
print("|---|---|---|---|---|---|---|")
for (fn, v), cs in sorted(rows.items()):
    first = [c[0] for c in cs]; later = [x for c in cs for x in c[1:]]
    print(f"| {fn} | {v} | {len(cs)} | {st.median(first):.3f} | {st.median(later):.3f} | {pct(later,0.9):.3f} | {max(later):.3f} |")
