#include "stages/coadd/Warper.h"

#include <Eigen/Dense>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "core/Error.h"
#include "stages/coadd/CoaddPsf.h"
#include "stages/coadd/Lanczos.h"

namespace drp {

void WarpConfig::validate() const {
    if (!WarpingKernel::isValidName(kernel)) {
        throw ConfigError("WarpConfig.kernel: '" + kernel + "' is not one of nearest, bilinear, lanczos2, lanczos3, lanczos4");
    }
    if (interpLength < 0 || interpLength > 100) throw ConfigError("WarpConfig.interpLength must be in [0, 100]");
    if (!(maxBadFraction >= 0.0 && maxBadFraction < 1.0)) throw ConfigError("WarpConfig.maxBadFraction must be in [0, 1)");
    if (!(maskWeightThreshold >= 0.0 && maskWeightThreshold < 1.0)) {
        throw ConfigError("WarpConfig.maskWeightThreshold must be in [0, 1)");
    }
    if (numThreads < 1 || numThreads > 256) throw ConfigError("WarpConfig.numThreads must be in [1, 256]");
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// Per-strip statistics, reduced in strip order so the totals do not depend on the thread count.
struct StripStats {
    std::int64_t good = 0, noData = 0;
    double sumA = 0.0, sumA2S = 0.0, sumS = 0.0;
    int minX = std::numeric_limits<int>::max(), minY = std::numeric_limits<int>::max();
    int maxX = std::numeric_limits<int>::min(), maxY = std::numeric_limits<int>::min();
};

struct WarpJob {
    const MaskedImageF& src;
    const Wcs& srcWcs;
    const Wcs& destWcs;
    Box2I destBox;
    const WarpConfig& config;
    WarpingKernel kernel;
    int step;  ///< node spacing (1 for exact)
    ImageF outImage;
    ImageF outVariance;
    Mask outMask;
    MaskPixel noDataBit;

    Point2D map(double x, double y) const {
        const Point2D p = srcWcs.skyToPixel(destWcs.pixelToSky({x, y}));
        return p;
    }

    void processStrip(int yBeg, int yEnd, StripStats& st) const;
};

void WarpJob::processStrip(int yBeg, int yEnd, StripStats& st) const {
    const int W = destBox.width();
    const int L = step;
    const int x0 = destBox.minX(), y0 = destBox.minY();
    // Node grid: columns k = -1 .. K + 1, rows m = mLo .. mHi (positions); areas on k = 0 .. K, m = mLo+1 .. mHi-1.
    const int K = (W - 1) / L + 1;
    const int mLo = yBeg / L - 1, mHi = (yEnd - 1) / L + 2;
    const int nk = K + 3, nm = mHi - mLo + 1;
    std::vector<double> nx(std::size_t(nk) * nm), ny(std::size_t(nk) * nm), na(std::size_t(nk) * nm, kNaN);
    auto idx = [&](int k, int m) { return std::size_t(m - mLo) * nk + std::size_t(k + 1); };
    for (int m = mLo; m <= mHi; ++m)
        for (int k = -1; k <= K + 1; ++k) {
            const Point2D p = map(double(x0 + k * L), double(y0 + m * L));
            nx[idx(k, m)] = p.x, ny[idx(k, m)] = p.y;
        }
    const double inv2L = 1.0 / (2.0 * L);
    for (int m = mLo + 1; m < mHi; ++m)
        for (int k = 0; k <= K; ++k) {
            const double j00 = (nx[idx(k + 1, m)] - nx[idx(k - 1, m)]) * inv2L;
            const double j01 = (nx[idx(k, m + 1)] - nx[idx(k, m - 1)]) * inv2L;
            const double j10 = (ny[idx(k + 1, m)] - ny[idx(k - 1, m)]) * inv2L;
            const double j11 = (ny[idx(k, m + 1)] - ny[idx(k, m - 1)]) * inv2L;
            na[idx(k, m)] = std::fabs(j00 * j11 - j01 * j10);
        }

    const ImageF& sImg = src.image();
    const ImageF& sVar = src.variance();
    const Mask& sMask = src.mask();
    const int sW = sImg.width(), sH = sImg.height();
    const double sx0 = sImg.xy0().x, sy0 = sImg.xy0().y;
    const int T = kernel.numTaps();
    const double support = kernel.support();
    const double thr = config.maskWeightThreshold;
    const double maxBad = config.maxBadFraction;
    const MaskPixel noData = noDataBit;
    const float fNaN = std::numeric_limits<float>::quiet_NaN();
    const float fInf = std::numeric_limits<float>::infinity();

    std::vector<double> rx(std::size_t(K + 1)), ry(std::size_t(K + 1)), ra(std::size_t(K + 1));
    double wx[WarpingKernel::kMaxTaps], wy[WarpingKernel::kMaxTaps];

    for (int y = yBeg; y < yEnd; ++y) {
        const int m = y / L;
        const double ty = double(y - m * L) / L;
        for (int k = 0; k <= K; ++k) {
            const std::size_t i0 = idx(k, m), i1 = idx(k, m + 1);
            rx[std::size_t(k)] = nx[i0] + ty * (nx[i1] - nx[i0]);
            ry[std::size_t(k)] = ny[i0] + ty * (ny[i1] - ny[i0]);
            ra[std::size_t(k)] = na[i0] + ty * (na[i1] - na[i0]);
        }
        float* oImg = outImage.row(y);
        float* oVar = outVariance.row(y);
        MaskPixel* oMask = outMask.row(y);
        for (int x = 0; x < W; ++x) {
            const int k = x / L;
            const double tx = double(x - k * L) / L;
            double lx, ly, a;
            if (tx == 0.0) {
                lx = rx[std::size_t(k)], ly = ry[std::size_t(k)], a = ra[std::size_t(k)];
            } else {
                const std::size_t k0 = std::size_t(k), k1 = k0 + 1;
                lx = rx[k0] + tx * (rx[k1] - rx[k0]);
                ly = ry[k0] + tx * (ry[k1] - ry[k0]);
                a = ra[k0] + tx * (ra[k1] - ra[k0]);
            }
            lx -= sx0, ly -= sy0;
            auto setNoData = [&] {
                oImg[x] = fNaN, oVar[x] = fInf, oMask[x] = noData;
                ++st.noData;
            };
            if (!(std::isfinite(lx) && std::isfinite(ly) && std::isfinite(a)) || lx <= -support || ly <= -support ||
                lx >= sW - 1 + support || ly >= sH - 1 + support) {
                setNoData();
                continue;
            }
            const int ix = kernel.computeWeights(lx, wx);
            const int iy = kernel.computeWeights(ly, wy);
            double value = 0.0, var = 0.0, sumSq = 0.0;
            MaskPixel maskOut = 0;
            bool done = false;
            if (ix >= 0 && iy >= 0 && ix + T <= sW && iy + T <= sH) {
                // Fast path: the whole footprint is inside the source.
                MaskPixel orv = 0;
                for (int j = 0; j < T; ++j) {
                    const MaskPixel* mr = sMask.row(iy + j) + ix;
                    for (int i = 0; i < T; ++i) orv |= mr[i];
                }
                if (!(orv & noData)) {
                    double sxx = 0.0, syy = 0.0;
                    for (int j = 0; j < T; ++j) {
                        const float* ir = sImg.row(iy + j) + ix;
                        const float* vr = sVar.row(iy + j) + ix;
                        double si = 0.0, sv = 0.0;
                        for (int i = 0; i < T; ++i) {
                            si += wx[i] * ir[i];
                            sv += wx[i] * wx[i] * vr[i];
                        }
                        value += wy[j] * si;
                        var += wy[j] * wy[j] * sv;
                    }
                    if (std::isfinite(value) && std::isfinite(var)) {
                        if (orv != 0) {
                            for (int j = 0; j < T; ++j) {
                                const MaskPixel* mr = sMask.row(iy + j) + ix;
                                const double ay = std::fabs(wy[j]);
                                for (int i = 0; i < T; ++i)
                                    if (mr[i] != 0 && std::fabs(wx[i]) * ay > thr) maskOut |= mr[i];
                            }
                        }
                        for (int i = 0; i < T; ++i) sxx += wx[i] * wx[i];
                        for (int j = 0; j < T; ++j) syy += wy[j] * wy[j];
                        sumSq = sxx * syy;
                        done = true;
                    }
                }
            }
            if (!done) {
                // General path: taps outside the image, NO_DATA or non-finite inputs.
                double sumAbs = 0.0, badAbs = 0.0, sw = 0.0, si = 0.0, sv = 0.0, sq = 0.0;
                MaskPixel orv = 0;
                for (int j = 0; j < T; ++j) {
                    const int yy = iy + j;
                    for (int i = 0; i < T; ++i) {
                        const int xx = ix + i;
                        const double w = wx[i] * wy[j], aw = std::fabs(w);
                        sumAbs += aw;
                        if (xx < 0 || yy < 0 || xx >= sW || yy >= sH) {
                            badAbs += aw;
                            continue;
                        }
                        const MaskPixel mv = sMask(xx, yy);
                        const double iv = sImg(xx, yy), vv = sVar(xx, yy);
                        if ((mv & noData) || !std::isfinite(iv) || !std::isfinite(vv)) {
                            badAbs += aw;
                            continue;
                        }
                        sw += w, si += w * iv, sv += w * w * vv, sq += w * w;
                        if (aw > thr) orv |= mv;
                    }
                }
                if (badAbs > maxBad * sumAbs || !(sw > 0.0)) {
                    setNoData();
                    continue;
                }
                value = si / sw;
                var = sv / (sw * sw);
                sumSq = sq / (sw * sw);
                maskOut = orv & ~noData;
            }
            oImg[x] = float(a * value);
            oVar[x] = float(a * a * var);
            oMask[x] = maskOut;
            ++st.good;
            st.sumA += a, st.sumA2S += a * a * sumSq, st.sumS += sumSq;
            st.minX = std::min(st.minX, x0 + x), st.maxX = std::max(st.maxX, x0 + x);
            st.minY = std::min(st.minY, y0 + y), st.maxY = std::max(st.maxY, y0 + y);
        }
    }
}


/// <T^2> over sample blocks of source pixels, T_s = sum_d a w_ds the total weight a source pixel receives
/// over the output (1 on average): the aliasing term of the covariance factor (see Warper.h). Uses the
/// local affine mapping at up to 3 x 3 sample points of the good region, 40 x 40 source pixels each.
double meanSquaredTotalWeight(const Wcs& srcWcs, const Wcs& destWcs, const Box2I& good, const WarpingKernel& kernel) {
    if (good.empty()) return 1.0;
    const int T = kernel.numTaps();
    const int half = 20, margin = T + 2, size = 2 * (half + margin);
    double sumT2 = 0.0;
    std::int64_t n = 0;
    std::vector<double> acc(std::size_t(size) * size);
    double wx[WarpingKernel::kMaxTaps], wy[WarpingKernel::kMaxTaps];
    for (int gy = 0; gy < 3; ++gy)
        for (int gx = 0; gx < 3; ++gx) {
            const Point2D dc{good.minX() + (gx + 0.5) / 3.0 * (good.width() - 1), good.minY() + (gy + 0.5) / 3.0 * (good.height() - 1)};
            auto map = [&](double x, double y) { return srcWcs.skyToPixel(destWcs.pixelToSky({x, y})); };
            const Point2D s0 = map(dc.x, dc.y);
            const Point2D x1 = map(dc.x + 1, dc.y), x0 = map(dc.x - 1, dc.y), y1 = map(dc.x, dc.y + 1), y0 = map(dc.x, dc.y - 1);
            Eigen::Matrix2d J;
            J << 0.5 * (x1.x - x0.x), 0.5 * (y1.x - y0.x), 0.5 * (x1.y - x0.y), 0.5 * (y1.y - y0.y);
            if (!J.allFinite() || !std::isfinite(s0.x) || !std::isfinite(s0.y) || std::fabs(J.determinant()) < 1e-9) continue;
            const double a = std::fabs(J.determinant());
            const Eigen::Matrix2d Jinv = J.inverse();
            // Source block [bx0, bx0 + size) x [by0, by0 + size); destination pixels covering it.
            const int bx0 = int(std::floor(s0.x)) - half - margin, by0 = int(std::floor(s0.y)) - half - margin;
            std::fill(acc.begin(), acc.end(), 0.0);
            const double r = (half + margin) * Jinv.operatorNorm() * 1.5 + 2;
            const int dx0 = int(std::floor(dc.x - r)), dx1 = int(std::ceil(dc.x + r));
            const int dy0 = int(std::floor(dc.y - r)), dy1 = int(std::ceil(dc.y + r));
            for (int dy = dy0; dy <= dy1; ++dy)
                for (int dx = dx0; dx <= dx1; ++dx) {
                    const double ox = dx - dc.x, oy = dy - dc.y;
                    const double sx = s0.x + J(0, 0) * ox + J(0, 1) * oy, sy = s0.y + J(1, 0) * ox + J(1, 1) * oy;
                    if (sx < bx0 - 8 || sy < by0 - 8 || sx > bx0 + size + 8 || sy > by0 + size + 8) continue;
                    const int ix = kernel.computeWeights(sx, wx) - bx0, iy = kernel.computeWeights(sy, wy) - by0;
                    for (int j = 0; j < T; ++j) {
                        if (iy + j < 0 || iy + j >= size) continue;
                        for (int i = 0; i < T; ++i)
                            if (ix + i >= 0 && ix + i < size) acc[std::size_t(iy + j) * size + std::size_t(ix + i)] += a * wx[i] * wy[j];
                    }
                }
            for (int y = margin; y < size - margin; ++y)
                for (int x = margin; x < size - margin; ++x) {
                    const double t = acc[std::size_t(y) * size + std::size_t(x)];
                    sumT2 += t * t;
                    ++n;
                }
        }
    return n > 0 ? sumT2 / double(n) : 1.0;
}

}  // namespace

MaskedImageF warpMaskedImage(const MaskedImageF& src, const Wcs& srcWcs, const Wcs& destWcs, const Box2I& destBox,
                             const WarpConfig& config, WarpInfo* info) {
    config.validate();
    if (destBox.empty()) throw InvalidInputError("warpMaskedImage: the destination box is empty");
    if (src.bbox().empty()) throw InvalidInputError("warpMaskedImage: the source image is empty");

    Mask outMask(Image<MaskPixel>(destBox, 0), std::make_shared<MaskPlaneDict>(*src.mask().planeDict()));
    const MaskPixel noDataBit = outMask.planeBitMask("NO_DATA");
    WarpJob job{src,      srcWcs,         destWcs,         destBox, config, WarpingKernel(config.kernel),
                std::max(1, config.interpLength), ImageF(destBox, 0.0f), ImageF(destBox, 0.0f), outMask, noDataBit};

    const int H = destBox.height();
    const int L = job.step;
    const int rowsPerStrip = L * std::max(1, 64 / L);
    const int numStrips = (H + rowsPerStrip - 1) / rowsPerStrip;
    std::vector<StripStats> stats(static_cast<std::size_t>(numStrips));
    std::atomic<int> next{0};
    std::exception_ptr error;
    std::mutex errorMutex;
    auto worker = [&] {
        for (;;) {
            const int s = next.fetch_add(1);
            if (s >= numStrips) return;
            try {
                job.processStrip(s * rowsPerStrip, std::min(H, (s + 1) * rowsPerStrip), stats[std::size_t(s)]);
            } catch (...) {
                std::lock_guard lock(errorMutex);
                if (!error) error = std::current_exception();
                next.store(numStrips);
            }
        }
    };
    const int nThreads = std::min(config.numThreads, numStrips);
    if (nThreads <= 1) {
        worker();
    } else {
        std::vector<std::thread> threads;
        threads.reserve(std::size_t(nThreads));
        for (int t = 0; t < nThreads; ++t) threads.emplace_back(worker);
        for (auto& t : threads) t.join();
    }
    if (error) std::rethrow_exception(error);

    if (info) {
        StripStats tot;
        for (const auto& s : stats) {
            tot.good += s.good, tot.noData += s.noData;
            tot.sumA += s.sumA, tot.sumA2S += s.sumA2S, tot.sumS += s.sumS;
            tot.minX = std::min(tot.minX, s.minX), tot.maxX = std::max(tot.maxX, s.maxX);
            tot.minY = std::min(tot.minY, s.minY), tot.maxY = std::max(tot.maxY, s.maxY);
        }
        *info = WarpInfo{};
        info->numGoodPixels = tot.good;
        info->numNoDataPixels = tot.noData;
        if (tot.good > 0) {
            info->goodBBox = Box2I::fromCorners({tot.minX, tot.minY}, {tot.maxX, tot.maxY});
            info->meanRelativeArea = tot.sumA / double(tot.good);
            info->meanSumSquaredWeights = tot.sumS / double(tot.good);
            info->meanSquaredTotalWeight = meanSquaredTotalWeight(srcWcs, destWcs, info->goodBBox, job.kernel);
            info->covarianceFactor =
                tot.sumA2S > 0.0 ? info->meanSquaredTotalWeight * tot.sumA / tot.sumA2S : info->meanSquaredTotalWeight;
        }
    }
    return MaskedImageF(job.outImage, job.outMask, job.outVariance);
}

Exposure warpExposure(const Exposure& src, std::shared_ptr<const Wcs> destWcs, const Box2I& destBox,
                      const WarpConfig& config, WarpInfo* info) {
    if (!src.hasWcs()) throw InvalidInputError("warpExposure: the source exposure has no WCS");
    if (!destWcs) throw InvalidInputError("warpExposure: no destination WCS");
    WarpInfo local;
    MaskedImageF mi = warpMaskedImage(src.maskedImage(), *src.wcs(), *destWcs, destBox, config, &local);
    Exposure out(std::move(mi), destWcs);
    out.setPhotoCalib(src.photoCalib());
    out.setVisitInfo(src.visitInfo());
    out.setDetector(src.detector());
    if (src.hasPsf()) {
        CoaddPsfInput in;
        in.psf = src.psf();
        in.wcs = src.wcs();
        in.weight = 1.0;
        in.validBox = src.bbox();
        out.setPsf(CoaddPsf::make(destWcs, {in}));
    }
    PropertyList& md = out.metadata();
    md.set("WARPKERN", config.kernel, "warping kernel");
    md.set("WARPILEN", config.interpLength, "WCS mapping interpolation length (pixels; 0 = exact)");
    md.set("WARPCOVF", local.covarianceFactor, "variance of large-area sums / sum of pixel variances");
    md.set("WARPAREA", local.meanRelativeArea, "mean destination pixel area in source pixels");
    md.set("WARPSUMW", local.meanSumSquaredWeights, "mean sum of squared kernel weights");
    md.set("WARPNGOD", local.numGoodPixels, "output pixels with data");
    if (info) *info = local;
    return out;
}

Box2I destinationBBox(const Box2I& srcBox, const Wcs& srcWcs, const Wcs& destWcs, const Box2I& clip, int grow) {
    if (srcBox.empty()) return {};
    const Box2D b(srcBox);
    Box2D out;
    auto add = [&](double x, double y) {
        const Point2D p = destWcs.skyToPixel(srcWcs.pixelToSky({x, y}));
        if (std::isfinite(p.x) && std::isfinite(p.y)) out = out.include(p);
    };
    const int nx = std::max(2, int(std::ceil(b.width() / 16.0)) + 1), ny = std::max(2, int(std::ceil(b.height() / 16.0)) + 1);
    for (int i = 0; i < nx; ++i) {
        const double x = b.minX() + b.width() * i / (nx - 1);
        add(x, b.minY()), add(x, b.maxY());
    }
    for (int j = 0; j < ny; ++j) {
        const double y = b.minY() + b.height() * j / (ny - 1);
        add(b.minX(), y), add(b.maxX(), y);
    }
    if (out.empty()) return {};
    Box2I r = Box2I::fromCorners({int(std::floor(out.minX())), int(std::floor(out.minY()))},
                                 {int(std::ceil(out.maxX())), int(std::ceil(out.maxY()))})
                  .grow(grow);
    if (!clip.empty()) r = r.intersection(clip);
    return r;
}

MaskedImageF embedInGrid(const MaskedImageF& warp, const Box2I& gridBox) {
    if (!gridBox.contains(warp.bbox()))
        throw LogicError("embedInGrid: the warp's box is not inside the grid's box");
    ImageF image(gridBox, std::numeric_limits<float>::quiet_NaN());
    ImageF variance(gridBox, std::numeric_limits<float>::infinity());
    Mask mask(Image<MaskPixel>(gridBox, 0), std::make_shared<MaskPlaneDict>(*warp.mask().planeDict()));
    mask.setBits(mask.planeBitMask("NO_DATA"));
    MaskedImageF full(image, mask, variance);
    MaskedImageF sub = full.subImage(warp.bbox());
    sub.image().assign(warp.image());
    sub.mask().assign(warp.mask());
    sub.variance().assign(warp.variance());
    return full;
}

}  // namespace drp
