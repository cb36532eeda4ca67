# Checks a lina-tune table against its `chosen:` line: the chosen candidate
# is the fastest row, ties go to the earlier row (a Lina row before the ds
# row), and there is exactly one chosen line. With -v not_slower=1 the chosen
# step must also be <= ds_ms (the ds plan was a candidate).
# Rows end in a ratio such as 1.000x; their step time is the field before.
$NF ~ /^[0-9.]+x$/ {
  ms = $(NF - 1) + 0
  if ($1 == "ds") ds = ms
  else if (lina == "" || ms < lina) lina = ms
}
/^chosen:/ {
  n++
  for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  s = v["step_ms"] + 0
  if (not_slower && s > v["ds_ms"] + 0) bad = "chosen step " s " ms is slower than ds " v["ds_ms"]
  else if (v["plan"] == "lina" && s != lina) bad = "plan=lina chosen but " s " ms is not the fastest Lina row (" lina ")"
  else if (v["plan"] == "lina" && ds != "" && ds < s) bad = "plan=lina chosen but the ds row is faster"
  else if (v["plan"] == "ds" && ds == "") bad = "plan=ds chosen without a ds row"
  else if (v["plan"] == "ds" && s != ds) bad = "plan=ds chosen with a step time that is not the ds row's"
  else if (v["plan"] == "ds" && lina != "" && ds >= lina) bad = "plan=ds chosen but not strictly faster than Lina"
  else if (v["plan"] != "lina" && v["plan"] != "ds") bad = "unknown plan '" v["plan"] "'"
}
END {
  if (n != 1) bad = "expected one chosen line, got " n + 0
  if (bad != "") { print "check-choice: " bad; exit 1 }
}
