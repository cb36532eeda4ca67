#!/usr/bin/env bash
#===- scripts/format.sh - Apply or check the tree's clang-format style ----===#
#
#   scripts/format.sh           reformat every C++ and CUDA source in place
#   scripts/format.sh --check   list the files that differ; exit 1 if any
#
# The style is .clang-format (LLVM's). The formatter is clang-format-19,
# the version of the LLVM toolchain the project builds with (setup.sh
# installs it); CLANG_FORMAT overrides it. ctest runs the check
# (`format-check`).
#===------------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "format.sh: unknown argument '$1' (--check)" >&2; exit 2 ;;
esac
fmt=${CLANG_FORMAT:-clang-format-19}
command -v "$fmt" >/dev/null ||
  { echo "format.sh: '$fmt' not found (apt-get install clang-format-19)" >&2; exit 2; }

mapfile -t files < <(git ls-files -- '*.cpp' '*.h' '*.cu' '*.cuh')
if [ $check = 0 ]; then
  "$fmt" -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$fmt" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "format.sh: ${#bad[@]} file(s) differ from .clang-format (run scripts/format.sh):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "format.sh: ${#files[@]} files follow .clang-format"
