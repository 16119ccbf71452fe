#include "stages/characterize/Background.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "core/Error.h"
#include "core/Simd.h"
#include "core/Statistics.h"

namespace drp {

namespace {

/// One query point of a 1-d interpolant through knots t_0 < ... < t_{n-1}:
///     value = a f_j + b f_{j+1} + c M_j + d M_{j+1},
/// with f the knot values and M the spline's second derivatives at the knots (0 for Linear).
struct Stencil1D {
    int j = 0;
    double a = 1.0, b = 0.0, c = 0.0, d = 0.0;
};

Stencil1D stencilAt(const std::vector<double>& t, double q, bool spline) {
    Stencil1D s;
    const int n = int(t.size());
    if (n == 1) return s;  // constant (f_{j+1} is not read: b = 0; see evaluation)
    if (q <= t[0]) {
        const double h = t[1] - t[0], u = q - t[0];
        s.j = 0;
        s.a = 1.0 - u / h;
        s.b = u / h;
        s.d = spline ? -u * h / 6.0 : 0.0;  // slope at t0 = (f1 - f0)/h - h M1 / 6 (M0 = 0)
        return s;
    }
    if (q >= t[std::size_t(n - 1)]) {
        const double h = t[std::size_t(n - 1)] - t[std::size_t(n - 2)], u = q - t[std::size_t(n - 1)];
        s.j = n - 2;
        s.a = -u / h;
        s.b = 1.0 + u / h;
        s.c = spline ? u * h / 6.0 : 0.0;  // slope at t_{n-1} = (f_{n-1} - f_{n-2})/h + h M_{n-2} / 6
        return s;
    }
    const int j = int(std::upper_bound(t.begin(), t.end(), q) - t.begin()) - 1;
    const double h = t[std::size_t(j + 1)] - t[std::size_t(j)];
    const double B = (q - t[std::size_t(j)]) / h, A = 1.0 - B;
    s.j = j;
    s.a = A;
    s.b = B;
    if (spline) {
        s.c = (A * A * A - A) * h * h / 6.0;
        s.d = (B * B * B - B) * h * h / 6.0;
    }
    return s;
}

/// Natural cubic spline second derivatives for `count` independent series sharing the knots t: the
/// values of series k at knot i are f[i * count + k]; returns M in the same layout (Thomas algorithm,
/// vectorised over the series).
std::vector<double> naturalSecondDerivatives(const std::vector<double>& t, const std::vector<double>& f, std::size_t count) {
    const std::size_t n = t.size();
    std::vector<double> m(n * count, 0.0);
    if (n < 3) return m;
    // Interior equations i = 1..n-2: h_{i-1} M_{i-1} + 2 (h_{i-1} + h_i) M_i + h_i M_{i+1} = 6 (slope_i - slope_{i-1}).
    std::vector<double> cprime(n, 0.0), denom(n, 0.0);
    std::vector<double> rhs(n * count, 0.0);
    for (std::size_t i = 1; i + 1 < n; ++i) {
        const double h0 = t[i] - t[i - 1], h1 = t[i + 1] - t[i];
        for (std::size_t k = 0; k < count; ++k) {
            rhs[i * count + k] = 6.0 * ((f[(i + 1) * count + k] - f[i * count + k]) / h1 - (f[i * count + k] - f[(i - 1) * count + k]) / h0);
        }
    }
    // Forward sweep.
    for (std::size_t i = 1; i + 1 < n; ++i) {
        const double h0 = t[i] - t[i - 1], h1 = t[i + 1] - t[i];
        const double lower = (i > 1) ? h0 : 0.0;
        denom[i] = 2.0 * (h0 + h1) - lower * cprime[i - 1];
        cprime[i] = h1 / denom[i];
        for (std::size_t k = 0; k < count; ++k) {
            const double prev = (i > 1) ? m[(i - 1) * count + k] : 0.0;
            m[i * count + k] = (rhs[i * count + k] - lower * prev) / denom[i];
        }
    }
    // Back substitution.
    for (std::size_t i = n - 2; i >= 1; --i) {
        if (i + 2 < n)
            for (std::size_t k = 0; k < count; ++k) m[i * count + k] -= cprime[i] * m[(i + 1) * count + k];
        if (i == 1) break;
    }
    return m;
}

/// One row of the model: o[x] = float(a f0[x] + b f1[x] + c m0[x] + d m1[x]). Element-wise, no FMA:
/// both clones give the same bits.
DRP_SIMD_CLONES void modelRow(float* __restrict o, const double* __restrict f0, const double* __restrict f1,
                              const double* __restrict m0, const double* __restrict m1, int w, double a, double b,
                              double c, double d) {
    for (int x = 0; x < w; ++x) o[x] = float(a * f0[x] + b * f1[x] + c * m0[x] + d * m1[x]);
}

bool useSpline(BackgroundConfig::Interpolation interp, int n, int minBins) {
    return interp == BackgroundConfig::Interpolation::NaturalSpline && n >= std::max(3, minBins);
}

const char* interpName(BackgroundConfig::Interpolation i) {
    return i == BackgroundConfig::Interpolation::Linear ? "Linear" : "NaturalSpline";
}

}  // namespace

void BackgroundConfig::validate() const {
    if (binSize < 4 || binSize > 65536) throw ConfigError("BackgroundConfig.binSize must be in [4, 65536]");
    if (!(clipSigma > 0.0) || !std::isfinite(clipSigma)) throw ConfigError("BackgroundConfig.clipSigma must be > 0");
    if (clipIterations < 1 || clipIterations > 100) throw ConfigError("BackgroundConfig.clipIterations must be in [1, 100]");
    if (minBinsForSpline < 2 || minBinsForSpline > 1000) throw ConfigError("BackgroundConfig.minBinsForSpline must be in [2, 1000]");
    if (!(minGoodFraction >= 0.0 && minGoodFraction <= 1.0)) throw ConfigError("BackgroundConfig.minGoodFraction must be in [0, 1]");
    if (sampleStep < 1 || sampleStep > 16) throw ConfigError("BackgroundConfig.sampleStep must be in [1, 16]");
    if (clipStartStride < 1 || clipStartStride > 64) throw ConfigError("BackgroundConfig.clipStartStride must be in [1, 64]");
    for (const auto& p : ignoredMaskPlanes)
        if (p.empty()) throw ConfigError("BackgroundConfig.ignoredMaskPlanes has an empty name");
}

Background::Background(const Box2I& bbox, std::vector<double> xCentres, std::vector<double> yCentres,
                       std::vector<double> values, BackgroundConfig::Interpolation interpolation, int minBinsForSpline,
                       std::vector<std::int64_t> counts)
    : bbox_(bbox), xCentres_(std::move(xCentres)), yCentres_(std::move(yCentres)), values_(std::move(values)),
      counts_(std::move(counts)), interpolation_(interpolation), minBinsForSpline_(minBinsForSpline) {
    if (bbox_.empty() || xCentres_.empty() || yCentres_.empty()) throw InvalidInputError("Background: empty bbox or no bins");
    if (values_.size() != xCentres_.size() * yCentres_.size()) throw InvalidInputError("Background: values must be ny x nx");
    if (!counts_.empty() && counts_.size() != values_.size()) throw InvalidInputError("Background: counts must be ny x nx");
    if (minBinsForSpline_ < 2) throw InvalidInputError("Background: minBinsForSpline must be >= 2");
    for (const auto* c : {&xCentres_, &yCentres_}) {
        for (std::size_t i = 0; i < c->size(); ++i) {
            if (!std::isfinite((*c)[i]) || (i > 0 && !((*c)[i] > (*c)[i - 1]))) {
                throw InvalidInputError("Background: bin centres must be finite and strictly increasing");
            }
        }
    }
    for (double v : values_)
        if (!std::isfinite(v)) throw InvalidInputError("Background: non-finite bin value");
}

Background& Background::operator+=(const Background& other) {
    if (!(bbox_ == other.bbox_ && xCentres_ == other.xCentres_ && yCentres_ == other.yCentres_ &&
          interpolation_ == other.interpolation_ && minBinsForSpline_ == other.minBinsForSpline_))
        throw InvalidInputError("Background: adding a background of different bins or interpolation");
    for (std::size_t i = 0; i < values_.size(); ++i) values_[i] += other.values_[i];
    counts_ = other.counts_;
    return *this;
}

ImageF Background::image(const Box2I& box) const {
    if (empty()) throw LogicError("Background::image on an empty background");
    ImageF out(box, kNoFill);  // every row is written below
    if (box.empty()) return out;
    const std::size_t w = std::size_t(box.width());
    modelRows(box, [&](int y, const float* row) { std::copy(row, row + w, out.row(y)); });
    return out;
}

void Background::modelRows(const Box2I& box, const std::function<void(int, const float*)>& sink) const {
    const std::size_t nxb = xCentres_.size(), nyb = yCentres_.size();
    const bool splineX = useSpline(interpolation_, int(nxb), minBinsForSpline_);
    const bool splineY = useSpline(interpolation_, int(nyb), minBinsForSpline_);
    const int w = box.width(), h = box.height();

    // 1. Along x, in every row of bins: F[j][x] for every column x of the box.
    // Second derivatives along x for each bin row: series = bin rows, knots = x centres.
    std::vector<double> fx(nxb * nyb);
    for (std::size_t j = 0; j < nyb; ++j)
        for (std::size_t i = 0; i < nxb; ++i) fx[i * nyb + j] = values_[j * nxb + i];
    const std::vector<double> mx = splineX ? naturalSecondDerivatives(xCentres_, fx, nyb) : std::vector<double>(nxb * nyb, 0.0);
    std::vector<double> rows(nyb * std::size_t(w));  // rows[j * w + x]
    for (int x = 0; x < w; ++x) {
        const Stencil1D s = stencilAt(xCentres_, double(box.minX() + x), splineX);
        const std::size_t j0 = std::size_t(s.j), j1 = nxb > 1 ? j0 + 1 : j0;
        for (std::size_t j = 0; j < nyb; ++j) {
            rows[j * std::size_t(w) + std::size_t(x)] = s.a * fx[j0 * nyb + j] + s.b * fx[j1 * nyb + j] + s.c * mx[j0 * nyb + j] + s.d * mx[j1 * nyb + j];
        }
    }
    // 2. Along y in every pixel column: second derivatives for all columns at once.
    const std::vector<double> my = splineY ? naturalSecondDerivatives(yCentres_, rows, std::size_t(w)) : std::vector<double>(nyb * std::size_t(w), 0.0);
    std::vector<float> o(static_cast<std::size_t>(w));
    for (int y = 0; y < h; ++y) {
        const Stencil1D s = stencilAt(yCentres_, double(box.minY() + y), splineY);
        const std::size_t j0 = std::size_t(s.j), j1 = nyb > 1 ? j0 + 1 : j0;
        const double* f0 = &rows[j0 * std::size_t(w)];
        const double* f1 = &rows[j1 * std::size_t(w)];
        const double* m0 = &my[j0 * std::size_t(w)];
        const double* m1 = &my[j1 * std::size_t(w)];
        modelRow(o.data(), f0, f1, m0, m1, w, s.a, s.b, s.c, s.d);
        sink(y, o.data());
    }
}

double Background::evaluate(Point2D p) const {
    const int ix = int(std::floor(p.x + 0.5)), iy = int(std::floor(p.y + 0.5));
    return image(Box2I({ix, iy}, 1, 1))(0, 0);
}

Table Background::toTable() const {
    Schema schema;
    auto kix = schema.addField<std::int32_t>("ix", "bin column index");
    auto kiy = schema.addField<std::int32_t>("iy", "bin row index");
    auto kx = schema.addField<double>("xCentre", "bin centre x (parent frame)", "pixel");
    auto ky = schema.addField<double>("yCentre", "bin centre y (parent frame)", "pixel");
    auto kv = schema.addField<double>("value", "background level of the bin (image units)");
    auto kc = schema.addField<std::int64_t>("count", "usable pixels in the bin (0: filled from neighbours)");
    Table t(schema, values_.size());
    const std::size_t nxb = xCentres_.size();
    for (std::size_t k = 0; k < values_.size(); ++k) {
        const std::size_t i = k % nxb, j = k / nxb;
        t.column(kix)[k] = std::int32_t(i);
        t.column(kiy)[k] = std::int32_t(j);
        t.column(kx)[k] = xCentres_[i];
        t.column(ky)[k] = yCentres_[j];
        t.column(kv)[k] = values_[k];
        t.column(kc)[k] = counts_.empty() ? -1 : counts_[k];
    }
    PropertyList& md = t.metadata();
    md.set("BKG_X0", bbox_.minX(), "background bbox min x");
    md.set("BKG_Y0", bbox_.minY(), "background bbox min y");
    md.set("BKG_WIDTH", bbox_.width(), "background bbox width");
    md.set("BKG_HEIGHT", bbox_.height(), "background bbox height");
    md.set("BKG_NX", std::int64_t(nxb), "bins along x");
    md.set("BKG_NY", std::int64_t(yCentres_.size()), "bins along y");
    md.set("BKG_INTERP", std::string(interpName(interpolation_)), "interpolation between bin centres");
    md.set("BKG_MINSPLN", minBinsForSpline_, "fewest bins on an axis for the spline");
    return t;
}

Background Background::fromTable(const Table& t) {
    const PropertyList& md = t.metadata();
    const Box2I bbox({int(md.getInt("BKG_X0")), int(md.getInt("BKG_Y0"))}, int(md.getInt("BKG_WIDTH")),
                     int(md.getInt("BKG_HEIGHT")));
    const std::int64_t nxb = md.getInt("BKG_NX"), nyb = md.getInt("BKG_NY");
    if (nxb < 1 || nyb < 1 || std::uint64_t(nxb * nyb) != t.size()) {
        throw InvalidInputError("Background::fromTable: BKG_NX x BKG_NY does not match the number of rows");
    }
    const std::string interp = md.getString("BKG_INTERP");
    BackgroundConfig::Interpolation mode;
    if (interp == "NaturalSpline") {
        mode = BackgroundConfig::Interpolation::NaturalSpline;
    } else if (interp == "Linear") {
        mode = BackgroundConfig::Interpolation::Linear;
    } else {
        throw InvalidInputError("Background::fromTable: unknown interpolation '" + interp + "'");
    }
    auto ix = t.column<std::int32_t>("ix");
    auto iy = t.column<std::int32_t>("iy");
    auto xc = t.column<double>("xCentre");
    auto yc = t.column<double>("yCentre");
    auto v = t.column<double>("value");
    auto c = t.column<std::int64_t>("count");
    std::vector<double> xs(std::size_t(nxb), 0.0), ys(std::size_t(nyb), 0.0), vals(t.size(), 0.0);
    std::vector<std::int64_t> counts(t.size(), 0);
    std::vector<char> seen(t.size(), 0);
    bool knownCounts = true;
    for (std::size_t k = 0; k < t.size(); ++k) {
        if (ix[k] < 0 || iy[k] < 0 || ix[k] >= nxb || iy[k] >= nyb) throw InvalidInputError("Background::fromTable: bin index out of range");
        const std::size_t idx = std::size_t(iy[k]) * std::size_t(nxb) + std::size_t(ix[k]);
        if (seen[idx]) throw InvalidInputError("Background::fromTable: duplicate bin");
        seen[idx] = 1;
        xs[std::size_t(ix[k])] = xc[k];
        ys[std::size_t(iy[k])] = yc[k];
        vals[idx] = v[k];
        counts[idx] = c[k];
        if (c[k] < 0) knownCounts = false;
    }
    if (!knownCounts) counts.clear();
    return Background(bbox, std::move(xs), std::move(ys), std::move(vals), mode, int(md.getInt("BKG_MINSPLN")), std::move(counts));
}

Background estimateBackground(const MaskedImageF& image, const BackgroundConfig& config) {
    config.validate();
    const Box2I bbox = image.bbox();
    if (bbox.empty()) throw InvalidInputError("estimateBackground: empty image");
    const MaskPixel bad = image.mask().planeBitMaskIfPresent(config.ignoredMaskPlanes);
    const int nxb = std::max(1, int(std::lround(double(bbox.width()) / config.binSize)));
    const int nyb = std::max(1, int(std::lround(double(bbox.height()) / config.binSize)));
    auto edge = [](int n, int length, int i) { return int((std::int64_t(i) * length) / n); };
    std::vector<double> xs(static_cast<std::size_t>(nxb), 0.0), ys(static_cast<std::size_t>(nyb), 0.0);
    for (int i = 0; i < nxb; ++i) xs[std::size_t(i)] = bbox.minX() + 0.5 * (edge(nxb, bbox.width(), i) + edge(nxb, bbox.width(), i + 1) - 1);
    for (int j = 0; j < nyb; ++j) ys[std::size_t(j)] = bbox.minY() + 0.5 * (edge(nyb, bbox.height(), j) + edge(nyb, bbox.height(), j + 1) - 1);

    StatisticsControl sc;
    sc.numSigmaClip = config.clipSigma;
    sc.numIter = config.clipIterations;
    sc.badMask = bad;
    sc.clipStartStride = config.clipStartStride;
    sc.properties = config.statistic == BackgroundConfig::Statistic::Median ? unsigned(kStatMedian) : unsigned(kStatClipped);
    std::vector<double> vals(std::size_t(nxb) * std::size_t(nyb), 0.0);
    std::vector<std::int64_t> counts(vals.size(), 0);
    std::vector<char> valid(vals.size(), 0);
    bool any = false;
    for (int j = 0; j < nyb; ++j) {
        const int y0 = edge(nyb, bbox.height(), j), y1 = edge(nyb, bbox.height(), j + 1);
        for (int i = 0; i < nxb; ++i) {
            const int x0 = edge(nxb, bbox.width(), i), x1 = edge(nxb, bbox.width(), i + 1);
            const Box2I bin({bbox.minX() + x0, bbox.minY() + y0}, x1 - x0, y1 - y0);
            const MaskedImageF sub = image.subImage(bin);
            const int step = config.sampleStep;
            Statistics st;
            double area = double(bin.area());
            if (step == 1) {
                st = makeStatistics(sub.image(), sub.mask(), sc);
            } else {  // the sampled pixels, masked ones as NaN (which makeStatistics leaves out)
                const int sw = (bin.width() + step - 1) / step, sh = (bin.height() + step - 1) / step;
                ImageF sample(sw, sh, kNoFill);
                for (int sy = 0; sy < sh; ++sy) {
                    const float* in = sub.image().row(sy * step);
                    const MaskPixel* m = sub.mask().row(sy * step);
                    float* out = sample.row(sy);
                    for (int sx = 0; sx < sw; ++sx)
                        out[sx] = (m[sx * step] & bad) ? std::numeric_limits<float>::quiet_NaN() : in[sx * step];
                }
                StatisticsControl unmasked = sc;
                unmasked.badMask = 0;
                st = makeStatistics(sample, unmasked);
                area = double(sample.width()) * sample.height();
            }
            const std::size_t k = std::size_t(j) * std::size_t(nxb) + std::size_t(i);
            const double v = config.statistic == BackgroundConfig::Statistic::Median ? st.median : st.clippedMean;
            const double need = std::max(3.0, config.minGoodFraction * area);
            if (double(st.count) >= need && std::isfinite(v)) {
                vals[k] = v;
                counts[k] = st.count;
                valid[k] = 1;
                any = true;
            }
        }
    }
    if (!any) throw InvalidInputError("estimateBackground: no bin has usable pixels");
    // Fill empty bins from their non-empty neighbours, ring by ring.
    for (bool missing = true; missing;) {
        missing = false;
        std::vector<char> nowValid = valid;
        std::vector<double> nowVals = vals;
        for (int j = 0; j < nyb; ++j)
            for (int i = 0; i < nxb; ++i) {
                const std::size_t k = std::size_t(j) * std::size_t(nxb) + std::size_t(i);
                if (valid[k]) continue;
                double s = 0;
                int n = 0;
                for (int dj = -1; dj <= 1; ++dj)
                    for (int di = -1; di <= 1; ++di) {
                        const int ii = i + di, jj = j + dj;
                        if (ii < 0 || jj < 0 || ii >= nxb || jj >= nyb) continue;
                        const std::size_t kk = std::size_t(jj) * std::size_t(nxb) + std::size_t(ii);
                        if (valid[kk]) s += vals[kk], ++n;
                    }
                if (n > 0) {
                    nowVals[k] = s / n;
                    nowValid[k] = 1;
                } else {
                    missing = true;
                }
            }
        valid.swap(nowValid);
        vals.swap(nowVals);
    }
    return Background(bbox, std::move(xs), std::move(ys), std::move(vals), config.interpolation, config.minBinsForSpline,
                      std::move(counts));
}

void subtractBackground(MaskedImageF& image, const Background& background) {
    if (background.empty()) throw LogicError("subtractBackground: empty background");
    if (image.bbox().empty()) return;
    // Row by row (the same float model values as image(), subtracted in place): no full-size model
    // image is allocated, filled and read back.
    const ImageF& im = image.image();  // shallow: row() gives writable pixels
    const std::size_t w = std::size_t(im.width());
    background.modelRows(im.bbox(), [&](int y, const float* row) {
        float* r = im.row(y);
        for (std::size_t x = 0; x < w; ++x) r[x] -= row[x];
    });
}

}  // namespace drp
