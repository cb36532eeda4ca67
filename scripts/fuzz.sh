#!/usr/bin/env bash
#===- scripts/fuzz.sh - Build and run the libFuzzer targets ---------------===#
#
#   scripts/fuzz.sh [--keep-going] SECONDS [TARGET...]
#
# Builds build-fuzz/ if needed (clang-19, libFuzzer + ASan + UBSan; see
# docs/TESTING.md), then runs each target (default: all) for SECONDS under
# `nice`, one after the other. The working corpus of a target grows in
# out/fuzz/<target>/corpus (seeded from fuzz/corpus/<target>); crashes,
# timeouts, leaks and out-of-memory inputs are written to out/fuzz/<target>/.
# Prints per target the inputs executed, the corpus size and every finding;
# exits non-zero if there was a finding.
#
#   --keep-going   fork mode: continue after a finding to collect more
#
# Targets: plan cluster trace profile model-config mlir.
# LINA_FUZZ_NICE (default 10) is the niceness, LINA_FUZZ_JOBS the build jobs.
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(plan cluster trace profile model-config mlir)
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

keep_going=0
while [ $# -gt 0 ]; do
  case "$1" in
    --keep-going) keep_going=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "fuzz.sh: unknown option '$1'" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -lt 1 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: the first argument must be a positive number of seconds" >&2
  usage >&2
  exit 2
fi
seconds=$1
shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] ||
    { echo "fuzz.sh: unknown target '$t' (${ALL_TARGETS[*]})" >&2; exit 2; }
done

build_dir=${LINA_BUILD_DIR:-build-fuzz}
LINA_BUILD_DIR=$build_dir LINA_JOBS=${LINA_FUZZ_JOBS:-$(nproc)} \
  nice -n "${LINA_FUZZ_NICE:-10}" scripts/setup.sh --fuzz

# libFuzzer handles the reports itself; make UBSan's fatal and symbolized.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# See docs/TESTING.md: LLVM headers poison memory that Debian's
# uninstrumented LLVM libraries reuse.
export ASAN_OPTIONS=${ASAN_OPTIONS:-allow_user_poisoning=0}
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-/usr/lib/llvm-19/bin/llvm-symbolizer}

status=0
summary=()
for t in "${targets[@]}"; do
  bin=$build_dir/bin/lina-fuzz-$t
  out=out/fuzz/$t
  mkdir -p "$out/corpus"
  dict=fuzz/dicts/json.dict
  [ "$t" = mlir ] && dict=fuzz/dicts/mlir.dict
  args=(-max_total_time="$seconds" -timeout=10 -report_slow_units=10
        -rss_limit_mb=2048
        -dict="$dict" -artifact_prefix="$out/" -print_final_stats=1)
  [ "$keep_going" = 1 ] &&
    args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  # Crashes, timeouts (-timeout), leaks and out-of-memory inputs are
  # findings. A slow unit (over -report_slow_units seconds of wall time) is
  # reported but is not one: on a loaded machine any input can be slow, and
  # a real hang ends as a timeout.
  before=$(find "$out" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' \
    -o -name 'leak-*' -o -name 'oom-*' \) | sort)
  slowBefore=$(find "$out" -maxdepth 1 -type f -name 'slow-unit-*' | sort)
  echo "=== $t: ${seconds}s"
  log=$out/last-run.log
  rc=0
  nice -n "${LINA_FUZZ_NICE:-10}" "$bin" "${args[@]}" "$out/corpus" \
    "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # Fork mode prints no final stats: its progress lines start with "#N:".
  [ -z "$execs" ] && execs=$(sed -n 's/^#\([0-9][0-9]*\):.*/\1/p' "$log" | tail -1)
  corpus=$(find "$out/corpus" -type f | wc -l)
  after=$(find "$out" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' \
    -o -name 'leak-*' -o -name 'oom-*' \) | sort)
  new=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
  slow=$(comm -13 <(echo "$slowBefore") \
    <(find "$out" -maxdepth 1 -type f -name 'slow-unit-*' | sort) | sed '/^$/d')
  line="$t: ${execs:-?} inputs executed, corpus $corpus files"
  for f in $slow; do
    line="$line, slow input (wall time, not a finding: replay it with $bin) $f"
  done
  if [ -n "$new" ] || [ "$rc" -ne 0 ]; then
    status=1
    line="$line, FINDINGS (libFuzzer exit $rc; log $log):"
    for f in $new; do line="$line $f"; done
    grep -m1 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error:|lina-fuzz-.*: )' \
      "$log" | sed 's/^/    /' || true
  fi
  echo "$line"
  summary+=("$line")
done

echo
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
echo "reproduce a finding: $build_dir/bin/lina-fuzz-TARGET FILE (docs/TESTING.md)"
exit $status
