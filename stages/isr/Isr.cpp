#include "stages/isr/Isr.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <sstream>

#include <Eigen/Dense>

#include "core/Error.h"
#include "core/SpanSet.h"

namespace drp {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::int32_t kAdcMax = 65535;

bool validAdu(std::int32_t v) { return v >= 0 && v <= kAdcMax; }

/// Median of a small vector (reorders it); mean of the two middle values when the size is even.
double medianOf(std::vector<double>& v) {
    if (v.empty()) return kNaN;
    const std::size_t n = v.size(), mid = n / 2;
    std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(mid), v.end());
    double m = v[mid];
    if (n % 2 == 0) m = 0.5 * (m + *std::max_element(v.begin(), v.begin() + std::ptrdiff_t(mid)));
    return m;
}

std::string describe(const RawExposure& raw, const Detector& detector) {
    std::ostringstream os;
    os << "runIsr(detector " << detector.name() << " (id " << detector.id() << ")";
    if (raw.visitInfo.visit) os << ", visit " << *raw.visitInfo.visit;
    os << ")";
    return os.str();
}

void requireShape(const Exposure* calib, const Detector& detector, const std::string& where, const char* what) {
    if (!calib) return;
    if (!(calib->bbox() == detector.bbox())) {
        std::ostringstream os;
        os << where << ": " << what << " covers " << calib->bbox() << ", the detector " << detector.bbox();
        throw InvalidInputError(os.str());
    }
}

/// Assembled-frame coordinates of raw data pixel (u, r) of an amplifier (offsets within rawDataBBox).
struct AmpMap {
    int x0, dx, y0, dy;
    explicit AmpMap(const Amplifier& a)
        : x0(a.rawFlipX() ? a.bbox.maxX() : a.bbox.minX()), dx(a.rawFlipX() ? -1 : 1),
          y0(a.rawFlipY() ? a.bbox.maxY() : a.bbox.minY()), dy(a.rawFlipY() ? -1 : 1) {}
    int x(int u) const { return x0 + dx * u; }
    int y(int r) const { return y0 + dy * r; }
};

}  // namespace

std::vector<AmplifierCalib> effectiveAmplifierCalibs(const Detector& detector, const IsrCalibrations& calibs) {
    const auto& amps = detector.amplifiers();
    std::vector<AmplifierCalib> out;
    if (calibs.amplifiers.empty()) {
        for (const Amplifier& a : amps) {
            AmplifierCalib c;
            c.gain = a.gain;
            c.readNoise = a.readNoise;
            c.nonlinearityCoeff = 0.0;
            c.saturationAdu = std::min(a.saturation, double(kAdcMax));
            out.push_back(c);
        }
        return out;
    }
    if (calibs.amplifiers.size() != amps.size()) {
        throw InvalidInputError("detector " + detector.name() + ": " + std::to_string(calibs.amplifiers.size()) +
                                " amplifier calibrations for " + std::to_string(amps.size()) + " amplifiers");
    }
    for (std::size_t i = 0; i < amps.size(); ++i) {
        const AmplifierCalib& c = calibs.amplifiers[i];
        if (!(c.gain > 0) || !std::isfinite(c.gain) || !(c.readNoise >= 0) || !std::isfinite(c.readNoise) ||
            !(c.saturationAdu > 0) || !std::isfinite(c.nonlinearityCoeff)) {
            throw InvalidInputError("detector " + detector.name() + ", amplifier " + amps[i].name +
                                    ": calibration needs gain > 0, readNoise >= 0, saturationAdu > 0, finite "
                                    "nonlinearityCoeff");
        }
    }
    return calibs.amplifiers;
}

namespace isr {

std::vector<double> overscanLevels(const Amplifier& amp, const Image<std::int32_t>& raw, const IsrConfig& config,
                                   double readNoiseAdu, double* noiseAdu, double* levelVarianceAdu2) {
    const Box2I data = amp.rawDataBBox;
    const Box2I os = amp.rawSerialOverscanBBox;
    const int nRows = data.height();
    std::vector<double> levels(std::size_t(nRows), kNaN);
    if (os.empty()) throw InvalidInputError("amplifier " + amp.name + " has no serial overscan");
    // Columns used: skip the ones next to the data (leading) and at the far end (trailing).
    int u0 = os.minX(), u1 = os.maxX();
    const bool afterData = os.minX() > data.maxX();
    const int lead = config.overscanSkipLeading, trail = config.overscanSkipTrailing;
    if (afterData) {
        u0 += lead;
        u1 -= trail;
    } else {
        u0 += trail;
        u1 -= lead;
    }
    if (u1 < u0) {  // skipping leaves nothing: use every column
        u0 = os.minX();
        u1 = os.maxX();
    }
    const Point2I xy0 = raw.xy0();
    const bool median = config.overscanMethod == OverscanMethod::MedianPerRow;
    const double tol = config.overscanClipSigma * std::max(readNoiseAdu, 1.0);
    std::vector<double> values, work;
    values.reserve(std::size_t(u1 - u0 + 1));
    work.reserve(std::size_t(u1 - u0 + 1));
    double sumSq = 0.0;
    std::int64_t nKept = 0, nRowsUsed = 0;
    for (int r = 0; r < nRows; ++r) {
        const int y = data.minY() + r;
        if (y < os.minY() || y > os.maxY()) continue;
        const std::int32_t* row = raw.row(y - xy0.y) - xy0.x;
        values.clear();
        for (int u = u0; u <= u1; ++u)
            if (validAdu(row[u])) values.push_back(double(row[u]));
        if (values.empty()) continue;
        work.assign(values.begin(), values.end());
        const double med = medianOf(work);
        double level = med;
        if (!median) {
            double s = 0.0;
            int n = 0;
            for (double v : values)
                if (std::fabs(v - med) <= tol) {
                    s += v;
                    ++n;
                }
            if (n > 0) level = s / n;
        }
        int n = 0;
        for (double v : values)
            if (std::fabs(v - med) <= tol) {
                sumSq += (v - level) * (v - level);
                ++n;
            }
        nKept += n;
        if (n > 0) ++nRowsUsed;
        levels[std::size_t(r)] = level;
    }
    // Rows with no usable overscan take the median level.
    std::vector<double> good;
    for (double l : levels)
        if (std::isfinite(l)) good.push_back(l);
    const double fallback = medianOf(good);
    for (double& l : levels)
        if (!std::isfinite(l)) l = fallback;

    const double dof = double(nKept - nRowsUsed);
    const double noise = dof > 0 ? std::sqrt(sumSq / dof) : readNoiseAdu;
    const double perRow = nRowsUsed > 0 ? double(nKept) / double(nRowsUsed) : 1.0;
    double levelVar = noise * noise / perRow;
    if (median) levelVar *= std::numbers::pi / 2.0;

    if (config.overscanMethod == OverscanMethod::Polynomial && std::isfinite(fallback)) {
        const int order = std::min(config.overscanOrder, std::max(nRows - 1, 0));
        Eigen::MatrixXd a(nRows, order + 1);
        Eigen::VectorXd b(nRows);
        const double half = std::max(0.5 * (nRows - 1), 0.5);
        for (int r = 0; r < nRows; ++r) {
            const double t = (r - 0.5 * (nRows - 1)) / half;
            // Legendre polynomials (well conditioned on [-1, 1]).
            double p0 = 1.0, p1 = t;
            for (int k = 0; k <= order; ++k) {
                double pk;
                if (k == 0) {
                    pk = p0;
                } else if (k == 1) {
                    pk = p1;
                } else {
                    pk = ((2.0 * k - 1.0) * t * p1 - (k - 1.0) * p0) / k;
                    p0 = p1;
                    p1 = pk;
                }
                a(r, k) = pk;
            }
            b(r) = levels[std::size_t(r)];
        }
        const Eigen::VectorXd coef = a.colPivHouseholderQr().solve(b);
        const Eigen::VectorXd fit = a * coef;
        for (int r = 0; r < nRows; ++r) levels[std::size_t(r)] = fit(r);
        levelVar = levelVar * double(order + 1) / double(std::max(nRows, 1));
    }
    if (noiseAdu) *noiseAdu = noise;
    if (levelVarianceAdu2) *levelVarianceAdu2 = levelVar;
    return levels;
}

void subtractCrosstalk(const ImageF& image, const Mask& mask, MaskPixel skipBits, const Detector& detector,
                       const Eigen::MatrixXd& crosstalk, const std::vector<AmplifierCalib>& amps) {
    const auto& dAmps = detector.amplifiers();
    const int nAmp = int(dAmps.size());
    if (crosstalk.rows() != nAmp || crosstalk.cols() != nAmp || int(amps.size()) != nAmp) {
        throw InvalidInputError("subtractCrosstalk: the crosstalk matrix is " + std::to_string(crosstalk.rows()) + "x" +
                                std::to_string(crosstalk.cols()) + " for " + std::to_string(nAmp) + " amplifiers");
    }
    // Sources: the values before correction, with unusable pixels contributing nothing.
    const ImageF source = image.clone();
    const Point2I xy0 = image.xy0();
    for (int y = 0; y < source.height(); ++y) {
        float* s = source.row(y);
        const MaskPixel* m = mask.row(y);
        for (int x = 0; x < source.width(); ++x)
            if ((m[x] & skipBits) || !std::isfinite(s[x])) s[x] = 0.0f;
    }
    // The (victim, source) pairs with a coefficient; rows outermost so that every row read and written
    // stays in cache (the amplifiers of one raw row share two detector rows).
    struct Pair {
        AmpMap vm, sm;
        float k;
        int w, h;
    };
    std::vector<Pair> pairs;
    int hMax = 0;
    for (int v = 0; v < nAmp; ++v) {
        for (int s = 0; s < nAmp; ++s) {
            const double c = crosstalk(v, s);
            if (c == 0.0 || s == v) continue;
            const Amplifier& va = dAmps[std::size_t(v)];
            const Amplifier& sa = dAmps[std::size_t(s)];
            const float k = float(c * amps[std::size_t(v)].gain / amps[std::size_t(s)].gain);
            const int w = std::min(va.bbox.width(), sa.bbox.width());
            const int h = std::min(va.bbox.height(), sa.bbox.height());
            pairs.push_back({AmpMap(va), AmpMap(sa), k, w, h});
            hMax = std::max(hMax, h);
        }
    }
    for (int r = 0; r < hMax; ++r) {
        for (const Pair& p : pairs) {
            if (r >= p.h) continue;
            float* out = image.row(p.vm.y(r) - xy0.y) - xy0.x;
            const float* in = source.row(p.sm.y(r) - xy0.y) - xy0.x;
            const int w = p.w;
            const float k = p.k;
            if (p.vm.dx == p.sm.dx) {
                // Same direction: aligned contiguous runs.
                float* o = out + (p.vm.dx > 0 ? p.vm.x0 : p.vm.x0 - (w - 1));
                const float* i = in + (p.sm.dx > 0 ? p.sm.x0 : p.sm.x0 - (w - 1));
                for (int u = 0; u < w; ++u) o[u] -= k * i[u];
            } else {
                // Opposite directions: o[j] pairs with i[w - 1 - j].
                float* o = out + (p.vm.dx > 0 ? p.vm.x0 : p.vm.x0 - (w - 1));
                const float* i = in + (p.sm.dx > 0 ? p.sm.x0 : p.sm.x0 - (w - 1));
                for (int j = 0; j < w; ++j) o[j] -= k * i[w - 1 - j];
            }
        }
    }
}

std::int64_t interpolateMaskedPixels(MaskedImageF& mi, MaskPixel bits, MaskPixel intrpBit, const IsrConfig& config) {
    const ImageF& img = mi.image();
    const Mask& mask = mi.mask();
    const ImageF& var = mi.variance();
    const int w = img.width(), h = img.height();
    std::vector<char> todo(std::size_t(w) * std::size_t(h), 0);
    std::int64_t nTodo = 0;
    for (int y = 0; y < h; ++y) {
        const MaskPixel* m = mask.row(y);
        for (int x = 0; x < w; ++x)
            if (m[x] & bits) {
                todo[std::size_t(y) * std::size_t(w) + std::size_t(x)] = 1;
                ++nTodo;
            }
    }
    if (nTodo == 0) return 0;
    std::int64_t filled = 0;

    if (config.interpolationMethod == InterpolationMethod::GaussianAverage) {
        const double sigma = config.interpolationSigma;
        const int rad = std::max(1, int(std::ceil(3.0 * sigma)));
        std::vector<double> kern(std::size_t(rad + 1));
        for (int d = 0; d <= rad; ++d) kern[std::size_t(d)] = std::exp(-0.5 * d * d / (sigma * sigma));
        std::vector<std::pair<std::size_t, std::pair<float, float>>> results;
        for (int y = 0; y < h; ++y) {
            for (int x = 0; x < w; ++x) {
                if (!todo[std::size_t(y) * std::size_t(w) + std::size_t(x)]) continue;
                double sw = 0, sv = 0, svar = 0;
                for (int yy = std::max(0, y - rad); yy <= std::min(h - 1, y + rad); ++yy) {
                    const MaskPixel* m = mask.row(yy);
                    const float* iv = img.row(yy);
                    const float* vv = var.row(yy);
                    const double wy = kern[std::size_t(std::abs(yy - y))];
                    for (int xx = std::max(0, x - rad); xx <= std::min(w - 1, x + rad); ++xx) {
                        if (m[xx] & bits) continue;
                        const double wt = wy * kern[std::size_t(std::abs(xx - x))];
                        sw += wt;
                        sv += wt * iv[xx];
                        svar += wt * vv[xx];
                    }
                }
                if (sw > 0) results.push_back({std::size_t(y) * std::size_t(w) + std::size_t(x), {float(sv / sw), float(svar / sw)}});
            }
        }
        for (const auto& [idx, val] : results) {
            const int y = int(idx / std::size_t(w)), x = int(idx % std::size_t(w));
            img(x, y) = val.first;
            var(x, y) = val.second;
            mask(x, y) |= intrpBit;
            todo[idx] = 0;
            ++filled;
        }
    }

    // Linear along rows (all of RowLinear; what the Gaussian could not reach).
    for (int y = 0; y < h; ++y) {
        const char* t = todo.data() + std::size_t(y) * std::size_t(w);
        float* iv = img.row(y);
        float* vv = var.row(y);
        MaskPixel* m = mask.row(y);
        for (int x = 0; x < w;) {
            if (!t[x]) {
                ++x;
                continue;
            }
            int x1 = x;
            while (x1 + 1 < w && t[x1 + 1]) ++x1;
            const int left = x - 1, right = x1 + 1;
            const bool hasL = left >= 0, hasR = right < w;
            if ((hasL || hasR) && x1 - x + 1 <= config.interpolationMaxWidth) {
                for (int k = x; k <= x1; ++k) {
                    double val, vr;
                    if (hasL && hasR) {
                        const double f = double(k - left) / double(right - left);
                        val = (1.0 - f) * iv[left] + f * iv[right];
                        vr = 0.5 * (double(vv[left]) + double(vv[right]));
                    } else {
                        const int src = hasL ? left : right;
                        val = iv[src];
                        vr = vv[src];
                    }
                    iv[k] = float(val);
                    vv[k] = float(vr);
                    m[k] |= intrpBit;
                    ++filled;
                }
            }
            x = x1 + 1;
        }
    }
    return filled;
}

}  // namespace isr

Exposure runIsr(const RawExposure& raw, const Detector& detector, const IsrCalibrations& calibs,
                const IsrConfig& config) {
    config.validate();
    const std::string where = describe(raw, detector);
    const auto& amps = detector.amplifiers();
    const int nAmp = int(amps.size());

    // ---- shapes and required calibrations
    if (raw.detectorId != detector.id())
        throw InvalidInputError(where + ": the raw claims detector id " + std::to_string(raw.detectorId));
    if (int(raw.amplifiers.size()) != nAmp) {
        throw InvalidInputError(where + ": " + std::to_string(raw.amplifiers.size()) + " amplifier images for " +
                                std::to_string(nAmp) + " amplifiers");
    }
    for (int i = 0; i < nAmp; ++i) {
        if (!(raw.amplifiers[std::size_t(i)].bbox() == amps[std::size_t(i)].rawBBox)) {
            std::ostringstream os;
            os << where << ": amplifier " << amps[std::size_t(i)].name << " image covers "
               << raw.amplifiers[std::size_t(i)].bbox() << ", expected " << amps[std::size_t(i)].rawBBox;
            throw InvalidInputError(os.str());
        }
    }
    const std::string band = raw.visitInfo.band.empty() ? std::string("(unknown)") : raw.visitInfo.band;
    if (config.doBias && !calibs.bias) throw NotFoundError(where + ": master bias not given (doBias)");
    if (config.doDark && !calibs.dark) throw NotFoundError(where + ": master dark not given (doDark)");
    if (config.doFlat && !calibs.flat) throw NotFoundError(where + ": master flat for band " + band + " not given (doFlat)");
    if (config.doCrosstalk && calibs.crosstalk.size() == 0)
        throw NotFoundError(where + ": crosstalk matrix not given (doCrosstalk)");
    if (config.doLinearity && calibs.amplifiers.empty())
        throw NotFoundError(where + ": per-amplifier linearity coefficients not given (doLinearity)");
    if (config.doBias) requireShape(calibs.bias, detector, where, "the master bias");
    if (config.doDark) requireShape(calibs.dark, detector, where, "the master dark");
    if (config.doFlat) requireShape(calibs.flat, detector, where, "the master flat");
    if (config.doCrosstalk && (calibs.crosstalk.rows() != nAmp || calibs.crosstalk.cols() != nAmp)) {
        throw InvalidInputError(where + ": the crosstalk matrix is " + std::to_string(calibs.crosstalk.rows()) + "x" +
                                std::to_string(calibs.crosstalk.cols()) + " for " + std::to_string(nAmp) +
                                " amplifiers");
    }
    const std::vector<AmplifierCalib> cal = effectiveAmplifierCalibs(detector, calibs);
    const double darkTime = raw.visitInfo.darkTimeS;
    if (config.doDark && !(std::isfinite(darkTime) && darkTime >= 0))
        throw InvalidInputError(where + ": the dark time is unknown or negative (doDark)");

    Exposure out(detector.bbox());
    MaskedImageF& mi = out.maskedImage();
    const ImageF& img = mi.image();
    const ImageF& var = mi.variance();
    Mask& mask = mi.mask();
    const MaskPixel badBit = mask.planeBitMask("BAD"), satBit = mask.planeBitMask("SAT");
    const MaskPixel intrpBit = mask.planeBitMask("INTRP");
    const Point2I xy0 = img.xy0();
    PropertyList md = raw.metadata;
    std::vector<std::string> steps;

    // ---- 1. overscan, saturation, gain; assemble into the detector frame
    std::vector<double> readoutVar(std::size_t(nAmp), 0.0);  // e-^2: read noise + overscan level noise
    std::int64_t nInvalid = 0;
    for (int i = 0; i < nAmp; ++i) {
        const Amplifier& a = amps[std::size_t(i)];
        const AmplifierCalib& c = cal[std::size_t(i)];
        const Image<std::int32_t>& r = raw.amplifiers[std::size_t(i)];
        const double rnAdu = c.readNoise / c.gain;
        double osNoise = 0.0, osVar = 0.0;
        std::vector<double> levels(std::size_t(a.rawDataBBox.height()), 0.0);
        if (config.doOverscan) {
            levels = isr::overscanLevels(a, r, config, rnAdu, &osNoise, &osVar);
            std::vector<double> tmp = levels;
            md.set("ISR_OSCAN_" + a.name, medianOf(tmp), "overscan level (median over rows), ADU");
            md.set("ISR_OSNOISE_" + a.name, osNoise, "overscan rms about the row levels, ADU");
        }
        md.set("ISR_GAIN_" + a.name, c.gain, "gain applied, e-/ADU");
        md.set("ISR_RDNOISE_" + a.name, c.readNoise, "read noise, e-");
        readoutVar[std::size_t(i)] = c.readNoise * c.readNoise + osVar * c.gain * c.gain;
        const AmpMap am(a);
        const float g = float(c.gain);
        const std::int32_t satAdu = std::int32_t(std::ceil(std::min(c.saturationAdu, 1e9)));
        for (int v = 0; v < a.rawDataBBox.height(); ++v) {
            const std::int32_t* in = r.row(a.rawDataBBox.minY() + v - r.xy0().y) + (a.rawDataBBox.minX() - r.xy0().x);
            const int ay = am.y(v) - xy0.y;
            float* o = img.row(ay) - xy0.x;
            MaskPixel* m = mask.row(ay) - xy0.x;
            const float level = float(levels[std::size_t(v)]);
            for (int u = 0; u < a.rawDataBBox.width(); ++u) {
                const std::int32_t val = in[u];
                const int ax = am.x(u);
                if (!validAdu(val)) {
                    o[ax] = std::numeric_limits<float>::quiet_NaN();
                    m[ax] |= badBit;
                    ++nInvalid;
                    continue;
                }
                if (config.doSaturation && val >= satAdu) m[ax] |= satBit;
                o[ax] = (float(val) - level) * g;
            }
        }
    }
    if (config.doOverscan) steps.push_back("overscan");
    if (config.doSaturation) steps.push_back("saturation");

    // ---- 2. bias
    if (config.doBias) {
        img -= calibs.bias->image();
        steps.push_back("bias");
    }
    // ---- 3. crosstalk (on the non-linear signal, as the amplifiers saw it)
    if (config.doCrosstalk) {
        isr::subtractCrosstalk(img, mask, badBit, detector, calibs.crosstalk, cal);
        steps.push_back("crosstalk");
    }
    // ---- 4. linearity, variance, dark, flat (one pass per amplifier)
    const bool calVar = config.doCalibrationVariance;
    // A master dark built from bias-subtracted darks inherits the master bias noise, scaled by
    // DKBIASF = mean(1 / darkTime) of its inputs; in (image - bias - dark x t) that part enters as
    // bias x (1 - t x DKBIASF) and cancels when the dark times match. Without the key the two masters
    // are taken as independent.
    double biasNoiseFactor = 1.0;
    if (config.doBias && config.doDark && calibs.dark->metadata().has("DKBIASF"))
        biasNoiseFactor = 1.0 - darkTime * calibs.dark->metadata().getDouble("DKBIASF");
    const double biasVarScale = biasNoiseFactor * biasNoiseFactor;
    const float flatMin = float(config.flatMinValue);
    for (int i = 0; i < nAmp; ++i) {
        const Amplifier& a = amps[std::size_t(i)];
        const double nl = config.doLinearity ? cal[std::size_t(i)].nonlinearityCoeff : 0.0;
        const double rv = readoutVar[std::size_t(i)];
        for (int y = a.bbox.minY(); y <= a.bbox.maxY(); ++y) {
            const int ly = y - xy0.y;
            float* o = img.row(ly) - xy0.x;
            float* vo = var.row(ly) - xy0.x;
            MaskPixel* m = mask.row(ly) - xy0.x;
            const float* bv = config.doBias ? calibs.bias->variance().row(ly) - xy0.x : nullptr;
            const float* dk = config.doDark ? calibs.dark->image().row(ly) - xy0.x : nullptr;
            const float* dv = config.doDark ? calibs.dark->variance().row(ly) - xy0.x : nullptr;
            const float* fl = config.doFlat ? calibs.flat->image().row(ly) - xy0.x : nullptr;
            const float* fv = config.doFlat ? calibs.flat->variance().row(ly) - xy0.x : nullptr;
            for (int x = a.bbox.minX(); x <= a.bbox.maxX(); ++x) {
                double s = o[x];
                if (nl != 0.0) s = isr::invertQuadraticNonlinearity(s, nl);
                double vv = std::max(s, 0.0) + rv;
                if (bv && calVar) vv += biasVarScale * bv[x];
                if (dk) {
                    s -= double(dk[x]) * darkTime;
                    if (calVar) vv += double(dv[x]) * darkTime * darkTime;
                }
                if (fl) {
                    const double f = fl[x];
                    if (!(f > flatMin)) {
                        m[x] |= badBit;
                        s = kNaN;
                    } else {
                        s /= f;
                        vv /= f * f;
                        if (calVar) vv += s * s * double(fv[x]) / (f * f);
                    }
                }
                o[x] = float(s);
                vo[x] = float(vv);
            }
        }
    }
    if (config.doLinearity) steps.push_back("linearity");
    if (config.doDark) steps.push_back("dark");
    if (config.doFlat) steps.push_back("flat");

    // ---- 5. defects, non-finite pixels, saturation growth
    if (config.doDefects) {
        for (const Box2I& d : calibs.defects) {
            const Box2I b = d.intersection(mi.bbox());
            if (!b.empty()) mask.subImage(b).setBits(badBit);
        }
        steps.push_back("defects");
    }
    for (int y = 0; y < img.height(); ++y) {
        const float* o = img.row(y);
        const float* vo = var.row(y);
        MaskPixel* m = mask.row(y);
        for (int x = 0; x < img.width(); ++x)
            if (!std::isfinite(o[x]) || !std::isfinite(vo[x])) m[x] |= badBit;
    }
    if (config.doSaturation && config.saturationGrow > 0) {
        const SpanSet sat = SpanSet::fromMask(mask, satBit);
        if (!sat.empty()) sat.dilated(config.saturationGrow, Stencil::BOX).setMask(mask, satBit);
    }

    // ---- 6. interpolation
    std::int64_t nIntrp = 0;
    if (config.doInterpolate) {
        MaskPixel bits = 0;
        for (const auto& p : config.interpolateMaskPlanes) bits |= mask.planeBitMask(p);
        nIntrp = isr::interpolateMaskedPixels(mi, bits, intrpBit, config);
        steps.push_back("interpolate");
    }

    // ---- metadata and provenance
    std::string stepList;
    for (const auto& s : steps) {
        if (!stepList.empty()) stepList += ",";
        stepList += s;
    }
    md.set("ISR_STEPS", stepList, "ISR steps applied, in order");
    md.set("ISR_NSAT", mask.countBits(satBit), "pixels masked SAT");
    md.set("ISR_NBAD", mask.countBits(badBit), "pixels masked BAD");
    md.set("ISR_NINTRP", nIntrp, "pixels interpolated");
    md.set("ISR_NINVALID", nInvalid, "raw pixels outside the 16-bit ADC range (masked BAD)");
    md.set("ISR_UNIT", "electron", "unit of the image plane");
    out.setMetadata(std::move(md));
    out.setVisitInfo(raw.visitInfo);
    out.setWcs(raw.headerWcs);
    out.setDetector(detector.id());
    return out;
}

}  // namespace drp
