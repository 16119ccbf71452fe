#!/usr/bin/env bash
# Artifact rejection on the simulator's own asteroids, through the campaign (issue 6): a demo-like r-band
# survey (10 visits, one per night, 2x2 detectors, small dithers) with 1500 asteroids/deg² moving
# 0.5-2 deg/day, so each asteroid image lies in one epoch only, coadded twice by `drp campaign
# --pipeline coadd`: plain (run processed) and with coadd.reject_artifacts=true (run rej). At every
# per-visit truth asteroid image with S/N > 10, isolated from static objects (none brighter than 25 within
# 5"), the PSF-weighted significance of the coadd (Gaussian of sigma 1.4 px, coadd variance) is measured
# where the coadd has >= 4 inputs (fewer epochs cannot outvote one). Asserts: the plain coadd shows >= 90% of
# them above 3 sigma (the test has power); after rejection none remains above 3 sigma (before the fixes of issue 6:
# 1 of 54 at 8.9 sigma, an asteroid at its epoch's detector edge, where the matched filter skipped the pixels near
# NO_DATA). Holes: the same statistic at blank-sky positions of the rejection coadd (a grid, no DETECTED pixel)
# has a width > 1 (the warps' resampling correlates the noise; measured MAD 1.19) and is below -3 at a fraction f
# of them; the asteroid positions must not hold more holes below -3 sigma than a Poisson count of mean n f exceeds
# with 1% probability (measured: 1 of 54 at -3.66 with n f = 0.35; before: 2, down to -4.2, the variance plane of
# replaced pixels lacking the prediction's covariance with the other epochs), and their mean must agree with the
# blank-sky median to 3 standard errors (replacements unbiased).
set -u
drp="$1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL $*"; fail=1; }
/usr/bin/python3 -c "import astropy, numpy, h5py" 2>/dev/null || { echo "SKIPPED: /usr/bin/python3 lacks astropy/numpy/h5py"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
R="$tmp/R"
"$drp" sim --repo "$R" --preset demo --set observing.bands=r --set observing.visits_per_band=10 \
  --set camera.detectors_x=2 --set camera.detectors_y=2 --set observing.dither_radius_deg=0.02 \
  --set sky.asteroids_per_deg2=1500 --set sky.transients_per_deg2=0 >/dev/null 2>&1 || bad "sim"
mpirun -np 2 --oversubscribe "$drp" build-calibs --repo "$R" >/dev/null 2>&1 || bad "build-calibs"
sky=(--set skymap.pixel_scale_arcsec=0.4 --set skymap.patch_inner_dimension=1000 --set skymap.patch_border=50)
out="$(mpirun -np 2 --oversubscribe "$drp" campaign --repo "$R" --pipeline coadd "${sky[@]}" \
  --set coadd.reject_artifacts=false 2>&1)" || bad "plain campaign"$'\n'"$out"
out="$(mpirun -np 2 --oversubscribe "$drp" campaign --repo "$R" --pipeline coadd "${sky[@]}" --output-run rej \
  --set coadd.reject_artifacts=true 2>&1)" || bad "rejection campaign"$'\n'"$out"
/usr/bin/python3 - "$R" <<'PY' || bad "asteroids in the coadds"
import glob, os, sys
import numpy as np, h5py
from astropy.io import fits
from astropy.wcs import WCS
repo = sys.argv[1]
# per-visit asteroid detections (truth), with their per-visit S/N
ast = []
for f in sorted(glob.glob(os.path.join(repo, "sim/truth/sources/r/*/*.h5"))):
    t = h5py.File(f)["sources"]
    ty, el, ra, dec = t["type"][:], t["electronsInImage"][:], t["ra"][:], t["dec"][:]
    sky = t.attrs["SKYELEC"]
    snr = el / np.sqrt(el + 4 * np.pi * 1.5**2 * sky)
    for k in np.where((ty == 4) & (snr > 10))[0]:
        ast.append((ra[k], dec[k], snr[k]))
objs = h5py.File(os.path.join(repo, "sim/truth/objects.h5"))["objects"]
ora, odec, omag, otype = objs["ra"][:], objs["dec"][:], objs["r_mag"][:], objs["type"][:]
static = (otype == 0) | (otype == 1) | (otype == 2)
_cache = {}
def load(f):  # each coadd opened once
    if f not in _cache:
        h = fits.open(f)
        _cache[f] = (WCS(h["IMAGE"].header), h["IMAGE"].data, h["VARIANCE"].data)
    return _cache[f]
def significance(run, ra, dec):
    best = None
    for f in sorted(glob.glob(os.path.join(repo, run, "deepCoadd/r/*/*/deepCoadd_*.fits"))):
        w, img, var = load(f)
        x, y = w.all_world2pix(ra, dec, 0)
        if not (10 < x < img.shape[1] - 10 and 10 < y < img.shape[0] - 10): continue
        ix, iy = int(round(float(x))), int(round(float(y)))
        sub = img[iy - 6:iy + 7, ix - 6:ix + 7]; v = var[iy - 6:iy + 7, ix - 6:ix + 7]
        if not np.all(np.isfinite(sub)): continue
        yy, xx = np.mgrid[-6:7, -6:7]
        P = np.exp(-0.5 * ((xx + ix - x)**2 + (yy + iy - y)**2) / 1.4**2); P /= P.sum()
        s = (P * sub).sum() / np.sqrt((P * P * v).sum())
        cov = np.isfinite(img).mean()
        sp = h5py.File(f.replace("deepCoadd_", "surveyProperty_").replace(".fits", ".h5"))["maps"]
        bs = sp.attrs["BINSIZE"]; nbx = sp.attrs["NBINSX"]
        k = int(iy // bs) * int(nbx) + int(ix // bs)
        nin = sp["nInputs"][k]
        if best is None or cov > best[1]: best = (s, cov, nin)
    return None if best is None else (best[0], best[2])
rows = []
for ra, dec, snr in ast:
    d = np.hypot((ora - ra) * np.cos(np.radians(dec)), odec - dec) * 3600
    if np.any(static & (d < 5) & (omag < 25)): continue
    a, b = significance("processed", ra, dec), significance("rej", ra, dec)
    if a is None or b is None: continue
    rows.append((snr, a[0], b[0], a[1]))
rows = np.array(rows)
deep = rows[rows[:, 3] >= 4]
n = len(deep)
above_plain, above, below = (deep[:, 1] > 3).sum(), (deep[:, 2] > 3).sum(), (deep[:, 2] < -3).sum()
print("asteroid images on >= 4 inputs: %d; above 3 sigma in the plain coadd: %d; after rejection above 3 sigma: %d "
      "(max %.2f), below -3 sigma: %d (min %.2f), mean %.2f" % (n, above_plain, above, deep[:, 2].max(), below,
                                                             deep[:, 2].min(), deep[:, 2].mean()))
# The statistic on blank sky of the rejection coadd (grid every 9 px, no DETECTED pixel in the 13 x 13 stamp).
blank = []
yy, xx = np.mgrid[-6:7, -6:7]
P = np.exp(-0.5 * (xx**2 + yy**2) / 1.4**2); P /= P.sum()
for f in sorted(glob.glob(os.path.join(repo, "rej", "deepCoadd/r/*/*/deepCoadd_*.fits"))):
    h = fits.open(f)
    img, var, msk = h["IMAGE"].data, h["VARIANCE"].data, h["MASK"].data
    det = 1 << int(h["MASK"].header["MP_DETECTED"])
    for iy in range(20, img.shape[0] - 20, 9):
        for ix in range(20, img.shape[1] - 20, 9):
            sub = img[iy - 6:iy + 7, ix - 6:ix + 7]
            if not np.all(np.isfinite(sub)) or np.any(msk[iy - 6:iy + 7, ix - 6:ix + 7] & det): continue
            blank.append((P * sub).sum() / np.sqrt((P * P * var[iy - 6:iy + 7, ix - 6:ix + 7]).sum()))
blank = np.array(blank)
med = np.median(blank)
width = 1.4826 * np.median(np.abs(blank - med))
lam = n * (blank < -3).mean()
allowed, cdf, term = 0, np.exp(-lam), np.exp(-lam)  # smallest k with P(Poisson(lam) > k) < 1%
while 1 - cdf >= 0.01:
    allowed += 1; term *= lam / allowed; cdf += term
stderr = width / np.sqrt(n)
print("blank sky: %d positions, median %.2f, MAD width %.2f, fraction below -3 %.4f: %d holes allowed; asteroid "
      "mean - blank median %.2f (3 standard errors %.2f)" % (len(blank), med, width, (blank < -3).mean(), allowed,
                                                            deep[:, 2].mean() - med, 3 * stderr))
ok = (n >= 20 and len(blank) >= 5000 and above_plain >= 0.9 * n and above == 0 and below <= allowed and
      abs(deep[:, 2].mean() - med) < 3 * stderr)
sys.exit(0 if ok else 1)
PY
[ "$fail" -eq 0 ] && echo "PASS"
exit "$fail"
