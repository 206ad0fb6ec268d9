# bench/lib/ab-pairs.awk: the table of `bench/compare --versus`, from its
# summary.tsv (label workload ops/s p50 p99 p99.9 max errors bench-cores
# server-cores server-us-per-op ...), for the workload w (awk -v w=...).
# Labels: dynamo-<durability>@<a|b><pair>[-<routing>] (no routing suffix when
# one routing ran); rows of other labels are ignored. Per system and routing:
# each pair's figures, then the geometric mean of b/a over the pairs that have
# both runs (a figure missing or zero on either side leaves that pair out of
# that figure's mean), and how many pairs b won on throughput.

# ratio(name, a, b): adds log(b/a) of one figure to its mean, if both are known.
function ratio(name, x, y) {
  if (x > 0 && y > 0) { logsum[name] += log(y / x); count[name]++ }
}
function mean(name) {
  return count[name] ? sprintf("%.3f", exp(logsum[name] / count[name])) : "-"
}

$2 == w && match($1, /@[ab][0-9]+/) {
  sys = substr($1, 1, RSTART - 1) substr($1, RSTART + RLENGTH)
  v = substr($1, RSTART + 1, 1)
  i = substr($1, RSTART + 2, RLENGTH - 2) + 0
  key = sys SUBSEP i
  if (!(sys in seen)) { seen[sys] = 1; order[++systems] = sys }
  if (i > pairs) pairs = i
  tput[key, v] = $3; p99[key, v] = $5; p999[key, v] = $6; sus[key, v] = $11
}

END {
  for (k = 1; k <= systems; k++) {
    sys = order[k]
    split("", logsum); split("", count)
    won = 0
    printf "\nworkload %s, %s\n", w, sys
    printf "%-6s %-6s %8s %8s %7s %7s %8s %8s %8s %8s\n", "pair", "order", "a ops/s",
           "b ops/s", "a us/op", "b us/op", "a p99", "b p99", "a p99.9", "b p99.9"
    for (i = 1; i <= pairs; i++) {
      key = sys SUBSEP i
      if (!((key, "a") in tput) || !((key, "b") in tput)) continue
      printf "%-6d %-6s %8d %8d %7d %7d %8.2f %8.2f %8.2f %8.2f\n", i, (i % 2 ? "ab" : "ba"),
             tput[key, "a"], tput[key, "b"], sus[key, "a"], sus[key, "b"],
             p99[key, "a"], p99[key, "b"], p999[key, "a"], p999[key, "b"]
      ratio("tput", tput[key, "a"], tput[key, "b"])
      ratio("sus", sus[key, "a"], sus[key, "b"])
      ratio("p99", p99[key, "a"], p99[key, "b"])
      ratio("p999", p999[key, "a"], p999[key, "b"])
      if (tput[key, "b"] > tput[key, "a"]) won++
    }
    if (!count["tput"]) { print "no complete pair"; continue }
    printf "b/a: ops/s %s (b ahead in %d of %d pairs), server us/op %s, p99 %s, p99.9 %s\n",
           mean("tput"), won, count["tput"], mean("sus"), mean("p99"), mean("p999")
  }
}
