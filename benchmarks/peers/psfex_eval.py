#!/usr/bin/python3
"""Compare PSF models with the simulator's true PSF on a grid of positions (benchmarks/peers/psfex_vs_drp.sh).

    psfex_eval.py TRUTH_GRID.fits [--grid LABEL=GRID.fits ...] [--psfex LABEL=MODEL.psf ...]

TRUTH_GRID and GRID files are written by `drp export-psf` / `drp measure-image --psf-out` (layout in
drivers/ImageCommands.cpp): N*N kernel images centred on pixel (S/2, S/2) at the positions of the POSITIONS
table (0-based parent pixel frame). A PSFEx .psf file is evaluated at the same positions from its own
definition (PSFEx manual; the PSF_MASK extension):
  * PSF_MASK holds PSFAXIS3 basis images of PSFAXIS1 x PSFAXIS2 samples (numpy shape (n, ny, nx));
  * with one context group of degree d (POLDEG1) over POLNAME1/POLNAME2 = X_IMAGE/Y_IMAGE, the model at
    (X, Y) is sum_k P_k basis[k], P = [x^i y^j for j in 0..d for i in 0..d-j] (1, x, x^2, y, xy, y^2 for d=2),
    x = (X - POLZERO1) / POLSCAL1, y = (Y - POLZERO2) / POLSCAL2, in SExtractor's 1-based pixels (X = x_drp + 1);
  * samples are PSF_SAMP image pixels apart, the PSF centre on sample (PSFAXIS1/2, PSFAXIS2/2) (integer
    division, 0-based); PSF_SAMP != 1 is resampled here to image pixels with a Lanczos-3 kernel.
Every model and the truth are normalised to unit sum over the common central box (the smallest stamp), then:
  T = Ixx + Iyy (also the signed median of dT/T) and distortion e1 = (Ixx - Iyy) / T, e2 = 2 Ixy / T from adaptive (elliptical-Gaussian-weighted,
  iterated) moments; dT/T = (T_model - T_true) / T_true; de = e_model - e_true; the pixel residual
  max|model - truth| / max(truth); the model's centroid offset from the truth's. Each as median and max
  of |.| over the grid. And "wing 3-5sig": the model's flux over the truth's in the annulus 3..5 sigma
  (sigma = sqrt(T_true / 2)), median over the grid (1 = the wings are right).
"""
import sys

import numpy as np
from astropy.io import fits


def read_grid(path):
    with fits.open(path) as h:
        s = h[0].header["STAMP"]
        stamps = h["STAMPS"].data.astype(np.float64)
        n = stamps.shape[0] // s
        stamps = stamps.reshape(n, s, s)
        pos = h["POSITIONS"].data
        return stamps, np.array(pos["x"], dtype=float), np.array(pos["y"], dtype=float), dict(h[0].header)


def lanczos(x, a=3):
    x = np.asarray(x, dtype=float)
    out = np.sinc(x) * np.sinc(x / a)
    out[np.abs(x) >= a] = 0.0
    return out


def read_psfex(path, xs, ys, size):
    """PSFEx model images at 0-based positions (xs, ys), on size x size image pixels centred on size // 2."""
    with fits.open(path) as h:
        hdr = h[1].header
        if hdr["POLNAXIS"] != 2 or hdr["POLNGRP"] != 1:
            raise SystemExit(f"{path}: only POLNAXIS = 2 with one context group is handled")
        if not (hdr["POLNAME1"].startswith("X") and hdr["POLNAME2"].startswith("Y")):
            raise SystemExit(f"{path}: context keys {hdr['POLNAME1']}, {hdr['POLNAME2']} are not image x, y")
        deg = hdr["POLDEG1"]
        nx, ny, nb = hdr["PSFAXIS1"], hdr["PSFAXIS2"], hdr["PSFAXIS3"]
        basis = np.array(h[1].data["PSF_MASK"][0], dtype=np.float64).reshape(nb, ny, nx)
        samp = hdr["PSF_SAMP"]
        info = {k: hdr.get(k) for k in ("LOADED", "ACCEPTED", "CHI2", "PSF_FWHM", "PSF_SAMP", "PSFAXIS1")}
        z1, z2, s1, s2 = hdr["POLZERO1"], hdr["POLZERO2"], hdr["POLSCAL1"], hdr["POLSCAL2"]
    assert nb == (deg + 1) * (deg + 2) // 2
    out = []
    for x0, y0 in zip(xs, ys):
        x = (x0 + 1 - z1) / s1
        y = (y0 + 1 - z2) / s2
        p = np.array([x**i * y**j for j in range(deg + 1) for i in range(deg + 1 - j)])
        img = np.tensordot(p, basis, (0, 0))
        if samp == 1.0:
            # Native sampling: place the model (centre nx // 2, ny // 2) on the size x size grid.
            m = np.zeros((size, size))
            c, cx, cy = size // 2, nx // 2, ny // 2
            for j in range(size):
                for i in range(size):
                    si, sj = i - c + cx, j - c + cy
                    if 0 <= si < nx and 0 <= sj < ny:
                        m[j, i] = img[sj, si]
        else:
            # Image pixel offset d is at sample coordinate centre + d / samp: Lanczos-3 interpolation.
            d = np.arange(size) - size // 2
            u = nx // 2 + d / samp
            v = ny // 2 + d / samp
            wx = lanczos(u[:, None] - np.arange(nx)[None, :])
            wy = lanczos(v[:, None] - np.arange(ny)[None, :])
            m = wy @ img @ wx.T
        out.append(m)
    return np.array(out), info


def crop(stamps, size):
    s = stamps.shape[1]
    o = (s - size) // 2
    return stamps[:, o:o + size, o:o + size]


def adaptive_moments(img, iters=200):
    """Adaptive second moments (elliptical Gaussian weight matched to the object, HSM-like). Returns
    (xc, yc, ixx, iyy, ixy) about the stamp centre pixel."""
    n = img.shape[0]
    c = n // 2
    y, x = np.mgrid[0:n, 0:n].astype(float)
    x -= c
    y -= c
    xc, yc, ixx, iyy, ixy = 0.0, 0.0, 2.0, 2.0, 0.0
    for _ in range(iters):
        det = ixx * iyy - ixy * ixy
        dx, dy = x - xc, y - yc
        w = np.exp(-0.5 * (iyy * dx * dx - 2 * ixy * dx * dy + ixx * dy * dy) / det)
        f = np.sum(w * img)
        nxc, nyc = np.sum(w * img * x) / f, np.sum(w * img * y) / f
        dx, dy = x - nxc, y - nyc
        qxx, qyy, qxy = (np.sum(w * img * dx * dx) / f, np.sum(w * img * dy * dy) / f, np.sum(w * img * dx * dy) / f)
        # For a Gaussian object of moments M weighted by a Gaussian of moments W: Q = (M^-1 + W^-1)^-1; at
        # the fixed point W = M, Q = M / 2.
        nxx, nyy, nxy = 2 * qxx, 2 * qyy, 2 * qxy
        done = abs(nxx - ixx) + abs(nyy - iyy) + abs(nxy - ixy) < 1e-12 * (ixx + iyy) and abs(nxc - xc) + abs(nyc - yc) < 1e-12
        xc, yc, ixx, iyy, ixy = nxc, nyc, nxx, nyy, nxy
        if done:
            break
    return xc, yc, ixx, iyy, ixy


def metrics(models, truth):
    rows = []
    for m, t in zip(models, truth):
        m = m / m.sum()
        t = t / t.sum()
        mc = adaptive_moments(m)
        tc = adaptive_moments(t)
        tm, tt = mc[2] + mc[3], tc[2] + tc[3]
        e1m, e2m = (mc[2] - mc[3]) / tm, 2 * mc[4] / tm
        e1t, e2t = (tc[2] - tc[3]) / tt, 2 * tc[4] / tt
        sigma = np.sqrt(tt / 2)
        n = t.shape[0]
        y, x = np.mgrid[0:n, 0:n] - n // 2
        ring = (np.hypot(x, y) >= 3 * sigma) & (np.hypot(x, y) < 5 * sigma)
        rows.append(((tm - tt) / tt, e1m - e1t, e2m - e2t, np.max(np.abs(m - t)) / t.max(),
                     np.hypot(mc[0] - tc[0], mc[1] - tc[1]), tt, m[ring].sum() / t[ring].sum()))
    return np.array(rows)


def main(argv):
    truth, xs, ys, thdr = read_grid(argv[0])
    grids, psfexes = [], []
    i = 1
    while i < len(argv):
        label, path = argv[i + 1].split("=", 1)
        (grids if argv[i] == "--grid" else psfexes).append((label, path))
        i += 2
    models, infos = [], {}  # (label, stamps, side of the stamp the model defines)
    for label, path in grids:
        st, gx, gy, hdr = read_grid(path)
        if not (np.allclose(gx, xs) and np.allclose(gy, ys)):
            raise SystemExit(f"{path}: positions differ from the truth grid")
        models.append((label, st, st.shape[1]))
    for label, path in psfexes:
        st, info = read_psfex(path, xs, ys, truth.shape[1])
        infos[label] = info
        side = info["PSFAXIS1"] if info["PSF_SAMP"] == 1.0 else int(info["PSFAXIS1"] * info["PSF_SAMP"]) | 1
        models.append((label, st, side))
    size = min([truth.shape[1]] + [m[2] for m in models])
    n = int(round(np.sqrt(len(xs))))
    res = {label: metrics(crop(st, size), crop(truth, size)) for label, st, _ in models}
    tt = next(iter(res.values()))[:, 5]
    print(f"truth: {thdr.get('PSFTYPE')} on a {n}x{n} grid over {thdr['BBOXW']}x{thdr['BBOXH']}, T_true (adaptive) "
          f"{tt.min():.3f}..{tt.max():.3f} px^2; compared on the central {size}x{size} pixels, each unit-sum there")
    print(f"{'model':22s} {'dT/T med':>9s} {'|dT/T| med':>10s} {'max':>8s} {'|de1| med':>9s} {'max':>8s} {'|de2| med':>9s} {'max':>8s} "
          f"{'pix res med':>11s} {'max':>8s} {'centroid max':>12s} {'wing 3-5sig':>11s}")
    for label, r in res.items():
        a = np.abs(r)
        print(f"{label:22s} {np.median(r[:, 0]):9.2e} {np.median(a[:, 0]):10.2e} {a[:, 0].max():8.2e} {np.median(a[:, 1]):9.2e} {a[:, 1].max():8.2e} "
              f"{np.median(a[:, 2]):9.2e} {a[:, 2].max():8.2e} {np.median(a[:, 3]):11.2e} {a[:, 3].max():8.2e} "
              f"{a[:, 4].max():10.3f}px {np.median(r[:, 6]):11.3f}")
    for label, info in infos.items():
        print(f"{label}: PSFEx loaded {info['LOADED']} stars, accepted {info['ACCEPTED']}, chi2 {info['CHI2']:.2f}, "
              f"FWHM {info['PSF_FWHM']:.2f} px, PSF_SAMP {info['PSF_SAMP']}, {info['PSFAXIS1']} samples a side")


if __name__ == "__main__":
    main(sys.argv[1:])
