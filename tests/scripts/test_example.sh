#!/usr/bin/env bash
# End to end through the drp command: the example job over several seeds (science checks on its
# summary), repository listing, verification that catches a corrupted file, refusal of a duplicate
# dataset, and the same job under mpirun.
set -u
drp="$1"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL $*"; fail=1; }

for seed in 1 2 3 4 5; do
  repo="$tmp/repo$seed"
  out="$("$drp" example --repo "$repo" --run r --seed "$seed" --width 512 --height 512 --stars 120 2>&1)" || bad "seed $seed: exit $?"
  grep -q "exposure round trip bit-exact, catalog round trip bit-exact, checksums match" <<<"$out" || bad "seed $seed: round trip"$'\n'"$out"
  # Science: completeness of isolated S/N>10 stars >= 95%, bright-star flux ratio within 2%, positions < 20 mas.
  compl="$(sed -n 's/.*completeness of isolated S\/N>10 stars: \([0-9.]*\)%.*/\1/p' <<<"$out")"
  ratio="$(sed -n 's/.*median flux ratio \([0-9.]*\).*/\1/p' <<<"$out")"
  pos="$(sed -n 's/.*median position error \([0-9.]*\) mas.*/\1/p' <<<"$out")"
  awk -v c="$compl" -v r="$ratio" -v p="$pos" 'BEGIN { exit !(c >= 95 && r > 0.98 && r < 1.02 && p < 20) }' \
    || bad "seed $seed: completeness $compl%, flux ratio $ratio, position error $pos mas"
  echo "ok   seed $seed: completeness $compl%, flux ratio $ratio, position error $pos mas"
done

repo="$tmp/repo1"
list="$("$drp" datasets --repo "$repo" 2>&1)" || bad "datasets: exit $?"
grep -q "^3 datasets" <<<"$list" || bad "datasets listing"$'\n'"$list"
"$drp" verify --repo "$repo" >/dev/null 2>&1 || bad "verify of an intact repository failed"

# A second dataset with the same type, run and data ID is refused, and nothing is lost.
out="$("$drp" example --repo "$repo" --run r --seed 9 --width 512 --height 512 --stars 120 2>&1)" && bad "duplicate run accepted"
grep -q "ConflictError" <<<"$out" || bad "duplicate: no ConflictError"$'\n'"$out"
"$drp" verify --repo "$repo" >/dev/null 2>&1 || bad "verify after a refused duplicate failed"

# Corrupt one byte of the calexp: verify must name it and exit non-zero.
calexp="$(find "$repo" -name 'calexp_*.fits' | head -1)"
printf '\x42' | dd of="$calexp" bs=1 seek=20000 conv=notrunc status=none
out="$("$drp" verify --repo "$repo" 2>&1)" && bad "verify accepted a corrupted file"
grep -q "checksum mismatch.*calexp" <<<"$out" || bad "verify message"$'\n'"$out"

# Under MPI (rank 0 works, the others have nothing to do).
if command -v mpirun >/dev/null; then
  out="$(mpirun -np 2 --oversubscribe "$drp" example --repo "$tmp/mpi" --width 256 --height 256 --stars 30 2>&1)" \
    || bad "mpirun -np 2: exit $?"$'\n'"$out"
fi

[ "$fail" -eq 0 ] && echo "example: all checks passed"
exit "$fail"
