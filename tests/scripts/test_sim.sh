#!/usr/bin/env bash
# drp sim from the command line: presets, overrides, config dump, errors, MPI, repository contents.
set -u
drp="$1"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL $*"; fail=1; }

out="$("$drp" sim --repo "$tmp/r" --preset tiny --set observing.visits_per_band=1 2>&1)" || bad "tiny: exit $?"$'\n'"$out"
grep -q "4 science and 24 calibration raw exposures" <<<"$out" || bad "tiny summary"$'\n'"$out"
list="$("$drp" datasets --repo "$tmp/r" 2>&1)"
for t in raw rawBias rawDark rawFlat refcat truthObjects truthVisits truthSources truthInstrument simConfig; do
  grep -q "; $t: " <<<"$list" || bad "no $t datasets"$'\n'"$list"
done
"$drp" verify --repo "$tmp/r" >/dev/null 2>&1 || bad "verify"

# The effective config is recorded and reproduces the run.
cfg="$(find "$tmp/r" -name sim_config.ini)"
grep -q "visits_per_band = 1" "$cfg" || bad "sim_config.ini lacks the override"
"$drp" sim --repo "$tmp/r2" --preset tiny --sim-config "$cfg" >/dev/null 2>&1 || bad "rerun from recorded config"
diff <(cd "$tmp/r/sim" && find raw -type f | sort | xargs md5sum) <(cd "$tmp/r2/sim" && find raw -type f | sort | xargs md5sum) >/dev/null \
  || bad "rerun from the recorded config gives different raws"

# Errors name what is wrong.
out="$("$drp" sim --repo "$tmp/e" --preset nope 2>&1)" && bad "unknown preset accepted"
grep -q "unknown simulator preset 'nope'" <<<"$out" || bad "preset error"$'\n'"$out"
out="$("$drp" sim --repo "$tmp/e" --set camera.detector_widht=3 2>&1)" && bad "unknown key accepted"
grep -q "unknown config key 'camera.detector_widht'" <<<"$out" || bad "key error"$'\n'"$out"
out="$("$drp" sim --repo "$tmp/e" --set camera.amps_x=7 2>&1)" && bad "inconsistent camera accepted"
grep -q "ConfigError" <<<"$out" || bad "camera validation"$'\n'"$out"
# A second simulation into the same run is refused without touching what is there.
out="$("$drp" sim --repo "$tmp/r" --preset tiny --set observing.visits_per_band=1 2>&1)" && bad "duplicate run accepted"
"$drp" verify --repo "$tmp/r" >/dev/null 2>&1 || bad "verify after refused rerun"

"$drp" sim --repo "$tmp/x" --dump-config | grep -q "^\[observing\]" || bad "dump-config"

[ "$fail" -eq 0 ] && echo "sim: all checks passed"
exit "$fail"
