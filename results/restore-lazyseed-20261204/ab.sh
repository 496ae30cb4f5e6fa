#!/bin/bash
# A/B: the Go SDK reseeds thaw.Rand in its restore hook (H, a worktree at
# the commit before) or at its first draw after a restore (L, this tree).
# Each binary runs from its own tree: bench builds the examples, and so the
# SDK, from the current directory.
out=$(cd "$(dirname "$0")" && pwd)
for r in ${ROUNDS:-1 2 3 4}; do
  for v in H L; do
    if [ $v = H ]; then dir=/tmp/wtH; else dir=/work/main; fi
    rm -rf /tmp/ls$v; mkdir -p /tmp/ls$v
    (cd $dir && /tmp/thaw-$v bench restore --engine wasmtime --functions hello,jsontransform --modes eager,bulk --trials 41 --data /tmp/ls$v/data --json > $out/run-$r-$v.json 2> $out/run-$r-$v.log)
    echo "round $r $v rc=$? $(cat /proc/loadavg)"
  done
done
