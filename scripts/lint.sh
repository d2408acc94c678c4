#!/usr/bin/env bash
# Source checks run by ctest (label lint): every C file is clang-formatted,
# every header compiles on its own, and library code never calls exit().
set -uo pipefail
cd "$(dirname "$0")/.."
dirs=(core manifests filters synth stages pipeline tests)
status=0

mapfile -t files < <(find "${dirs[@]}" -name '*.[ch]' -not -path '*/corpus/*' | sort)
if ! clang-format --dry-run --Werror "${files[@]}" 2>/tmp/vc-lint-format.$$; then
  echo "not clang-formatted (run: clang-format -i FILE):"
  grep -o '^[^:]*\.[ch]' /tmp/vc-lint-format.$$ | sort -u
  status=1
fi
rm -f /tmp/vc-lint-format.$$

cflags=$(pkg-config --cflags libcjson libarchive libturbojpeg libwebp libpng libzstd 2>/dev/null)
for h in $(find core manifests filters synth stages pipeline -name '*.h' | sort); do
  if ! echo "#include \"$h\"" | cc -std=c11 -D_GNU_SOURCE -fsyntax-only -Wall -Werror -I. $cflags -x c - 2>/tmp/vc-lint-h.$$; then
    echo "header does not compile on its own: $h"; cat /tmp/vc-lint-h.$$; status=1
  fi
done
rm -f /tmp/vc-lint-h.$$

if grep -nE '\b(exit|abort)\s*\(' core/*.c manifests/*.c filters/*.c synth/*.c stages/*.c 2>/dev/null |
   grep -vE '^[^:]+:[0-9]+:\s*(\*|/\*|//)'; then
  echo "library code must return errors, not exit()"; status=1
fi
[ $status -eq 0 ] && echo "lint: ${#files[@]} files formatted, headers self-contained, no exit() in libraries"
exit $status
