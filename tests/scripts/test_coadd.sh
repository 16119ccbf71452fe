#!/usr/bin/env bash
# drp campaign --pipeline coadd end to end on a small simulated survey (one band, 4 visits, 2x2 detectors)
# on a sky map with small patches:
#  - every planned assembleCoadd quantum writes deepCoadd, deepCoadd_surveyProperty, deepCoadd_surveyPropertyPng;
#  - outputs byte-identical at 1 and 2 ranks;
#  - a coadd opens in astropy with IMAGE/MASK/VARIANCE/PSF HDUs, and its pixel noise in clean empty
#    regions of near-constant variance (the number of inputs varies over a patch) matches
#    sqrt(median VARIANCE) within 10%;
#  - deepCoadd files are tile-compressed (lossless: GZIP_2 unquantised floats, RICE_1 mask), smaller than
#    their uncompressed planes, read back by astropy and by drp itself (export-psf reads the exposure);
#    the header has BAND and WARPCOVF; the skyBackground map comes from calexpBackground (finite, > 0);
#  - the depth map PNG starts with the PNG signature; unknown coadd.* keys are refused;
#  - one assembleDetectionCoadd per patch with a coadd (deepCoadd_detection: DETBANDS, unit-variance
#    noise); the optional flavours on --resume: goodSeeingCoadd (coadd.best_seeing_quantile=0.5) from the
#    survey-wide selection bestSeeingVisits (selected = seeing <= numpy's quantile over the band's visits;
#    every patch coadds the selected visits that reach it, >= 2 patches all of them), shortPeriodCoadd over
#    all dates pixel-identical to the deep coadd, the same bytes at 2 ranks and in the Slurm order at 4
#    ranks (a --global-only job records the selection, then a coadd array task finds it);
#  - provenance lists only the contributing inputs (calexps with a pixel in the patch, = NINPUTS, and their
#    backgrounds);
#  - with artifact rejection (4 passes) the warp cache gives byte-identical outputs to re-warping
#    (DRP_COADD_WARP_CACHE=0), and leaves no scratch file in TMPDIR.
set -u
drp="$1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL $*"; fail=1; }
base="$tmp/base"
mpi() { local n="$1"; shift; mpirun -np "$n" --oversubscribe "$@"; }
sums() { "$drp" datasets --repo "$1" --collection processed --checksums; }
sky=(--set skymap.pixel_scale_arcsec=0.4 --set skymap.patch_inner_dimension=1000 --set skymap.patch_border=50)

"$drp" sim --repo "$base" --preset demo --set observing.bands=r --set observing.visits_per_band=4 \
  --set camera.detectors_x=2 --set camera.detectors_y=2 --set sky.star_density_per_deg2=25000 >/dev/null 2>&1 || bad "sim"
mpi 2 "$drp" build-calibs --repo "$base" >/dev/null 2>&1 || bad "build-calibs"

out="$("$drp" campaign --repo "$base" --pipeline coadd "${sky[@]}" --dry-run 2>&1)" || bad "dry-run: exit $?"$'\n'"$out"
echo "$out"
npatch="$(sed -n 's/^ *assembleCoadd *\([0-9]*\) .*/\1/p' <<<"$out")"
[ "${npatch:-0}" -ge 2 ] || bad "expected >= 2 assembleCoadd quanta, got '$npatch'"
out="$("$drp" campaign --repo "$base" --pipeline coadd "${sky[@]}" --set coadd.no_such_key=1 --dry-run 2>&1)" \
  && bad "unknown coadd key accepted"

for n in 1 2; do
  cp -al "$base" "$tmp/p$n"
  out="$(mpi "$n" "$drp" campaign --repo "$tmp/p$n" --pipeline coadd "${sky[@]}" 2>&1)" || bad "np $n: exit $?"$'\n'"$out"
  grep -q " 0 failed, 0 blocked" <<<"$out" || bad "np $n summary"$'\n'"$out"
done
echo "$out"
ref="$(sums "$tmp/p1")"
for t in deepCoadd deepCoadd_surveyProperty deepCoadd_surveyPropertyPng; do
  c="$(grep -c "^$t"$'\t' <<<"$ref")"
  [ "$c" -eq "${npatch:-0}" ] || bad "expected $npatch $t datasets, got $c"$'\n'"$ref"
done
[ "$(sums "$tmp/p2")" = "$ref" ] || bad "np 2 outputs differ from np 1"

# The best-covered coadd: HDUs, noise vs variance plane, PNG signature, survey property table.
if /usr/bin/python3 -c "import astropy, numpy, h5py" 2>/dev/null; then
  /usr/bin/python3 - "$tmp/p1" <<'PY' || bad "coadd checks"
import glob, os, sys
import numpy as np, h5py
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
repo = sys.argv[1]
best = None
for f in sorted(glob.glob(os.path.join(repo, "processed/deepCoadd/*/*/*/deepCoadd_*.fits"))):
    with fits.open(f) as h:
        good = np.isfinite(h["IMAGE"].data).mean()
    if best is None or good > best[0]:
        best = (good, f)
good, f = best
print("coadd", os.path.relpath(f, repo), "coverage %.3f" % good)
ok = True
with fits.open(f) as h:
    names = [x.name for x in h]
    for n in ("IMAGE", "MASK", "VARIANCE", "PSF"):
        if n not in names:
            print("missing HDU", n, names); ok = False
    img = h["IMAGE"].data.astype(float); var = h["VARIANCE"].data.astype(float); mask = h["MASK"].data
    if h[0].header.get("BUNIT") != "nJy":
        print("BUNIT", h[0].header.get("BUNIT")); ok = False
    if h[0].header.get("BAND") != "r" or not (1.0 <= h[0].header.get("WARPCOVF", 0) < 3.0):
        print("BAND", h[0].header.get("BAND"), "WARPCOVF", h[0].header.get("WARPCOVF")); ok = False
# Every coadd is tile-compressed, losslessly, and smaller than its planes would be uncompressed.
total = raw = 0
for g in sorted(glob.glob(os.path.join(repo, "processed/deepCoadd/*/*/*/deepCoadd_*.fits"))):
    with fits.open(g, disable_image_compression=True) as h:
        for n, alg in (("IMAGE", "GZIP_2"), ("MASK", "RICE_1"), ("VARIANCE", "GZIP_2")):
            hd = h[n].header
            if not hd.get("ZIMAGE") or hd.get("ZCMPTYPE") != alg or hd.get("ZQUANTIZ", "NONE") != "NONE":
                print("not losslessly compressed:", g, n, hd.get("ZCMPTYPE"), hd.get("ZQUANTIZ")); ok = False
        raw += 12 * h["IMAGE"].header["ZNAXIS1"] * h["IMAGE"].header["ZNAXIS2"]
    total += os.path.getsize(g)
print("deepCoadd files: %.1f MB compressed, %.1f MB of uncompressed planes (%.2f)" % (total / 1e6, raw / 1e6, total / raw))
if total >= raw:
    ok = False
clean = (mask == 0) & np.isfinite(img) & np.isfinite(var)
# The variance varies with the number of inputs per pixel, so compare where it is nearly constant: pixels
# within 10% of the median variance; clip the sources. Also the clipped std of IMAGE / sqrt(VARIANCE).
vmed = np.median(var[clean])
sel = clean & (np.abs(var / vmed - 1) < 0.1)
mean, med, std = sigma_clipped_stats(img[sel], sigma=3.0, maxiters=10)
pred = np.sqrt(np.median(var[sel]))
ratio = std / pred
chi = sigma_clipped_stats(img[clean] / np.sqrt(var[clean]), sigma=3.0, maxiters=10)[2]
print("pixels %d  measured std %.4g  sqrt(median var) %.4g  ratio %.4f  clipped std of IMAGE/sqrt(VARIANCE) %.4f"
      % (sel.sum(), std, pred, ratio, chi))
if sel.sum() < 10000 or not (0.9 < ratio < 1.1) or not (0.9 < chi < 1.1):
    ok = False
for p in glob.glob(os.path.join(repo, "processed/deepCoadd/*/*/*/depth_*.png")):
    if open(p, "rb").read(8) != b"\x89PNG\r\n\x1a\n":
        print("not a PNG:", p); ok = False
sp = f.replace("deepCoadd_", "surveyProperty_").replace(".fits", ".h5")
with h5py.File(sp, "r") as h:
    g = h["maps"]
    cols = set(g.keys()) if isinstance(g, h5py.Group) else set(g.dtype.names)
    print("survey property columns", sorted(cols))
    sky = np.asarray(g["skyBackground"]) if isinstance(g, h5py.Group) else g["skyBackground"]
    n = np.asarray(g["nInputs"]) if isinstance(g, h5py.Group) else g["nInputs"]
    covered = sky[n > 0]
    print("skyBackground over covered bins: min %.4g median %.4g nJy" % (np.nanmin(covered), np.nanmedian(covered)))
    if not (np.all(np.isfinite(covered)) and np.nanmin(covered) > 0):
        ok = False
sys.exit(0 if ok else 1)
PY
else
  echo "SKIP python checks: /usr/bin/python3 lacks astropy/numpy/h5py"
fi
# drp reads its compressed coadds back (readExposure, PSF included).
one="$(ls "$tmp"/p1/processed/deepCoadd/*/*/*/deepCoadd_*.fits | head -1)"
out="$("$drp" export-psf "$one" --out "$tmp/psf.fits" --grid 2 2>&1)" || bad "export-psf of $one"$'\n'"$out"
grep -q "CoaddPsf" <<<"$out" || bad "export-psf: no CoaddPsf"$'\n'"$out"

# The detection coadd and the optional flavours (added to the finished np 1 run with --resume).
ndet="$(grep -c "^deepCoadd_detection"$'\t' <<<"$ref")"
[ "$ndet" -ge 1 ] || bad "no deepCoadd_detection datasets"
flav=(--set coadd.best_seeing_quantile=0.5 --set coadd.short_period_begin=0 --set coadd.short_period_end=1000000)
out="$(mpi 2 "$drp" campaign --repo "$tmp/p1" --pipeline coadd "${sky[@]}" "${flav[@]}" --resume 2>&1)" || bad "flavours: exit $?"$'\n'"$out"
grep -q " 0 failed, 0 blocked" <<<"$out" || bad "flavours summary"$'\n'"$out"
fs="$(sums "$tmp/p1")"
c="$(grep -c "^shortPeriodCoadd"$'\t' <<<"$fs")"
[ "$c" -eq "${npatch:-0}" ] || bad "expected $npatch shortPeriodCoadd datasets, got $c"
# Best seeing is survey-wide: one bestSeeingVisits selection; a patch none of whose overlapping calexps
# belongs to a selected visit writes no goodSeeingCoadd.
c="$(grep -c "^goodSeeingCoadd"$'\t' <<<"$fs")"
[ "$c" -ge 2 ] && [ "$c" -le "${npatch:-0}" ] || bad "expected 2..$npatch goodSeeingCoadd datasets, got $c"
[ "$(grep -c "^bestSeeingVisits"$'\t' <<<"$fs")" -eq 1 ] || bad "expected one bestSeeingVisits dataset"
# The same flavours the way a Slurm campaign makes them, at 4 ranks: the global job (default pipeline, no
# coadds) records the selection, then the coadd stage's array task (which runs no global quantum) finds it
# in the repository; the bytes are those of the 2-rank run above.
out="$(mpi 2 "$drp" campaign --repo "$tmp/p2" "${sky[@]}" "${flav[@]}" --global-only --resume 2>&1)" || bad "global job: exit $?"$'\n'"$out"
grep -Eq "^ *selectBestSeeingVisits +1 +1 +0 +0 +0" <<<"$out" || bad "the global job did not make the selection"$'\n'"$out"
out="$(mpi 4 "$drp" campaign --repo "$tmp/p2" --pipeline coadd "${sky[@]}" "${flav[@]}" --array-index 0 --array-count 1 --resume 2>&1)" \
  || bad "coadd stage np 4: exit $?"$'\n'"$out"
grep -q " 0 failed, 0 blocked" <<<"$out" || bad "coadd stage summary"$'\n'"$out"
[ "$(sums "$tmp/p2")" = "$fs" ] || bad "flavour outputs differ between the 2-rank run and the Slurm-like 4-rank stages"
if /usr/bin/python3 -c "import astropy, numpy" 2>/dev/null; then
  /usr/bin/python3 - "$tmp/p1" <<'PY' || bad "flavour / detection coadd checks"
import glob, os, sys
import numpy as np
from astropy.io import fits
repo = sys.argv[1]
ok = True
for f in sorted(glob.glob(os.path.join(repo, "processed/shortPeriodCoadd/*/*/*/*.fits"))):
    d = f.replace("shortPeriodCoadd", "deepCoadd")
    if not np.array_equal(fits.getdata(f, "IMAGE"), fits.getdata(d, "IMAGE"), equal_nan=True):
        print("short period over all dates differs from the deep coadd:", f); ok = False
def prov(h):
    return [h["PRVIN%d" % i] for i in range(1, h["PRVNIN"] + 1)]
def visits(h):  # visits of the calexps in the provenance ("calexp run band=r detector=0 ... visit=N checksum")
    return {int(w.split("=")[1]) for s in prov(h) if s.startswith("calexp ") for w in s.split() if w.startswith("visit=")}
# Provenance lists the contributing inputs only: each calexp with a pixel in the patch (NINPUTS of them),
# each followed by its calexpBackground; with the old behaviour (every joined calexp) 2 of 36 deep coadds
# here listed calexps that contribute nothing.
nprov = 0
for f in sorted(glob.glob(os.path.join(repo, "processed/*Coadd/*/*/*/*Coadd_*.fits"))):
    h = fits.getheader(f, 0)
    p = prov(h)
    nc = sum(s.startswith("calexp ") for s in p)
    nb = sum(s.startswith("calexpBackground ") for s in p)
    if nc != h["NINPUTS"] or nb != nc or any(len(s.split()[-1]) != 32 for s in p):
        print("provenance", os.path.relpath(f, repo), "NINPUTS", h["NINPUTS"], "calexps", nc, "backgrounds", nb); ok = False
    nprov += 1
print("provenance checked on %d coadds" % nprov)
# Survey-wide best seeing: the selection holds every visit of the band with its seeing; the selected ones
# are exactly those at or under the band's quantile (numpy's linear quantile of the visits' seeing).
import h5py
with h5py.File(os.path.join(repo, "processed/bestSeeingVisits.h5"), "r") as hf:
    g = hf["visits"]
    col = lambda k: np.asarray(g[k])
    band, visit, seeing, sel, thr = col("band"), col("visit"), col("seeing"), col("selected"), col("threshold")
    ndet = col("nDetectors")
    q = float(g.attrs["SEEINGQ"])
band = np.array([b.decode() if isinstance(b, bytes) else b for b in band])
print("bestSeeingVisits: seeing", np.round(seeing, 3), "selected", sel, "threshold %.4f" % thr[0])
want = np.quantile(seeing[band == "r"], q)
if not (len(visit) == 4 and np.all(ndet == 4) and np.allclose(thr, want, rtol=1e-12) and
        np.array_equal(sel.astype(bool), seeing <= want) and 1 <= sel.sum() < len(visit)):
    print("selection differs from the band quantile", want); ok = False
chosen = set(int(v) for v in visit[sel == 1])
full = 0
for f in sorted(glob.glob(os.path.join(repo, "processed/goodSeeingCoadd/*/*/*/*.fits"))):
    h, hd = fits.getheader(f, 0), fits.getheader(f.replace("goodSeeingCoadd", "deepCoadd"), 0)
    if not (1 <= h["NINPUTS"] <= hd["NINPUTS"] and h["FLAVOR"] == "bestSeeing" and abs(h["SEEINGLM"] - want) < 1e-9):
        print("best seeing", f, h["NINPUTS"], hd["NINPUTS"]); ok = False
    # Every patch uses the same visit subset: the selected visits that reach it.
    if visits(h) != visits(hd) & chosen or not any(s.startswith("bestSeeingVisits ") for s in prov(h)):
        print("best seeing visits", os.path.relpath(f, repo), sorted(visits(h)), "deep", sorted(visits(hd)), "chosen", sorted(chosen)); ok = False
    full += visits(h) == chosen
print("goodSeeingCoadd patches with the whole selection: %d" % full)
if full < 2:
    print("fewer than two patches hold every selected visit"); ok = False
best = None
for f in sorted(glob.glob(os.path.join(repo, "processed/deepCoadd/detection/*/*/*.fits"))):
    with fits.open(f) as h:
        if h[0].header["DETBANDS"] != "r": print("DETBANDS", h[0].header["DETBANDS"]); ok = False
        im, var = h["IMAGE"].data, h["VARIANCE"].data
        good = np.isfinite(im).mean()
        if best is None or good > best[0]: best = (good, im, var)
z = (best[1] / np.sqrt(best[2]))[np.isfinite(best[1])]
z = z[np.abs(z) < 5]
print("detection coadd: noise / predicted %.3f" % z.std())
if abs(z.std() - 1) > 0.1: ok = False
sys.exit(0 if ok else 1)
PY
fi

# Artifact rejection (4 passes): the warp cache changes no output byte, and cleans up after itself.
rej=(--set coadd.reject_artifacts=true)
for mode in cache nocache; do
  cp -al "$base" "$tmp/r$mode"
  mkdir -p "$tmp/scratch-$mode"
  cacheVar=1; [ "$mode" = nocache ] && cacheVar=0
  s0=$(date +%s.%N)
  out="$(TMPDIR="$tmp/scratch-$mode" DRP_COADD_WARP_CACHE=$cacheVar mpi 2 "$drp" --log-level verbose campaign \
        --repo "$tmp/r$mode" --pipeline coadd "${sky[@]}" "${rej[@]}" 2>&1)" || bad "rejection ($mode): exit $?"$'\n'"$out"
  used="$(grep -c 'warp cache' <<<"$out")"
  echo "rejection campaign, warp $mode: $(awk -v a="$s0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}') s; $used quanta used the cache"
  if [ "$mode" = cache ]; then [ "$used" -gt 0 ] || bad "the warp cache was not used"; else [ "$used" -eq 0 ] || bad "DRP_COADD_WARP_CACHE=0 ignored"; fi
  grep -q " 0 failed, 0 blocked" <<<"$out" || bad "rejection ($mode) summary"$'\n'"$(tail -20 <<<"$out")"
  [ -z "$(ls -A "$tmp/scratch-$mode")" ] || bad "scratch files left in TMPDIR ($mode): $(ls -A "$tmp/scratch-$mode")"
done
[ "$(sums "$tmp/rcache")" = "$(sums "$tmp/rnocache")" ] || bad "warp cache changes the outputs"
[ "$fail" -eq 0 ] && echo "PASS"
exit "$fail"
