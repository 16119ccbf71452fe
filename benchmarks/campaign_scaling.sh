#!/usr/bin/env bash
# Strong scaling of `drp campaign` on the demo survey: the same campaign at 1, 2 (and any further) rank
# counts, each into its own hard-linked copy of the input repository; prints wall time, speed-up and
# parallel efficiency, and checks the outputs are byte-identical across rank counts.
#   benchmarks/campaign_scaling.sh [build/drp] [ranks...]      e.g. benchmarks/campaign_scaling.sh build/drp 1 2
set -euo pipefail
drp="$(realpath "${1:-build/drp}")"; shift || true
ranks=("${@:-1 2}"); [ $# -eq 0 ] && ranks=(1 2)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
base="$tmp/base"
mpirun -np 2 --oversubscribe "$drp" sim --repo "$base" --preset demo >/dev/null 2>&1
mpirun -np 2 --oversubscribe "$drp" build-calibs --repo "$base" >/dev/null 2>&1
echo "demo survey: $("$drp" datasets --repo "$base" --type raw | tail -1)"
t1=""
ref=""
printf "%6s %10s %9s %11s  %s\n" ranks "wall (s)" speed-up efficiency summary
for n in "${ranks[@]}"; do
  cp -al "$base" "$tmp/r$n"
  s=$(date +%s.%N)
  out="$(mpirun -np "$n" --oversubscribe "$drp" --log-level error campaign --repo "$tmp/r$n" --quiet 2>&1 || true)"
  e=$(date +%s.%N)
  wall=$(awk -v a="$s" -v b="$e" 'BEGIN { print b - a }')
  [ -z "$t1" ] && t1=$(awk -v w="$wall" -v n="$n" 'BEGIN { print w * n }')
  sums="$("$drp" datasets --repo "$tmp/r$n" --collection processed --checksums)"
  [ -z "$ref" ] && ref="$sums"
  same=identical; [ "$sums" = "$ref" ] || same=DIFFERENT
  printf "%6d %10.1f %9.2f %10.0f%%  %s; outputs %s\n" "$n" "$wall" "$(awk -v t="$t1" -v w="$wall" 'BEGIN { print t / w }')" \
    "$(awk -v t="$t1" -v w="$wall" -v n="$n" 'BEGIN { print 100 * t / w / n }')" "$(grep -m1 'quanta:' <<<"$out" | sed 's/^campaign: //')" "$same"
done
