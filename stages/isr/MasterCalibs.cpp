#include "stages/isr/MasterCalibs.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "core/Error.h"
#include "core/Statistics.h"
#include "stages/isr/Isr.h"

namespace drp {

namespace isr {

Exposure combineExposures(const std::vector<Exposure>& inputs, const std::vector<double>& scales, MaskPixel badBits,
                          const MasterConfig& config, double* clippedFraction, bool poissonSignal) {
    config.validate();
    if (inputs.empty()) throw InvalidInputError("combineExposures: no inputs");
    if (scales.size() != inputs.size()) throw LogicError("combineExposures: one scale per input is needed");
    const Box2I bbox = inputs.front().bbox();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        if (!(inputs[i].bbox() == bbox)) throw InvalidInputError("combineExposures: inputs of different shapes");
        if (!(scales[i] > 0) || !std::isfinite(scales[i]))
            throw InvalidInputError("combineExposures: input " + std::to_string(i) + " has a non-positive scale");
    }
    const std::size_t n = inputs.size();
    Exposure out(bbox);
    MaskedImageF& mi = out.maskedImage();
    Mask& mask = mi.mask();
    const MaskPixel noData = mask.planeBitMask("BAD") | mask.planeBitMask("NO_DATA");
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const double k = config.clipSigma;
    std::vector<double> val(n), readout(n), scale(n), work(n);
    std::vector<char> keep(n), prev(n);
    std::int64_t usable = 0, clipped = 0;
    std::vector<const float*> imgRow(n), varRow(n);
    std::vector<const MaskPixel*> maskRow(n);
    for (int y = 0; y < bbox.height(); ++y) {
        for (std::size_t i = 0; i < n; ++i) {
            const MaskedImageF& in = inputs[i].maskedImage();
            imgRow[i] = in.image().row(y);
            varRow[i] = in.variance().row(y);
            maskRow[i] = in.mask().row(y);
        }
        float* outImg = mi.image().row(y);
        float* outVar = mi.variance().row(y);
        MaskPixel* outMask = mask.row(y);
        for (int x = 0; x < bbox.width(); ++x) {
            std::size_t m = 0;
            for (std::size_t i = 0; i < n; ++i) {
                const double v = imgRow[i][x], vv = varRow[i][x];
                if ((maskRow[i][x] & badBits) || !std::isfinite(v) || !std::isfinite(vv)) continue;
                val[m] = v / scales[i];
                readout[m] = poissonSignal ? std::max(vv - std::max(v, 0.0), 0.0) : vv;
                scale[m] = scales[i];
                ++m;
            }
            usable += std::int64_t(m);
            if (m < std::size_t(config.minKept)) {
                outImg[x] = nan;
                outVar[x] = nan;
                outMask[x] |= noData;
                clipped += std::int64_t(m);
                continue;
            }
            // Start at the median.
            std::copy(val.begin(), val.begin() + std::ptrdiff_t(m), work.begin());
            const std::size_t mid = m / 2;
            std::nth_element(work.begin(), work.begin() + std::ptrdiff_t(mid), work.begin() + std::ptrdiff_t(m));
            double c = work[mid];
            if (m % 2 == 0) c = 0.5 * (c + *std::max_element(work.begin(), work.begin() + std::ptrdiff_t(mid)));
            // The Poisson term from the combined estimate, not clamped at 0 (clamping a noisy estimate of a
            // small signal biases the variance high); the readout noise keeps the sum positive.
            auto sigma2 = [&](std::size_t i, double centre) {
                const double signal = poissonSignal ? centre * scale[i] : 0.0;
                double v = readout[i] + signal;
                if (!(v > 0)) v = readout[i] > 0 ? readout[i] : std::fabs(signal);
                return v / (scale[i] * scale[i]);
            };
            std::fill(prev.begin(), prev.begin() + std::ptrdiff_t(m), 1);
            for (int it = 0; it < config.maxIterations; ++it) {
                std::size_t kept = 0;
                double sum = 0.0;
                for (std::size_t i = 0; i < m; ++i) {
                    const double s2 = sigma2(i, c);
                    keep[i] = (val[i] - c) * (val[i] - c) <= k * k * s2 ? 1 : 0;
                    if (keep[i]) {
                        sum += val[i];
                        ++kept;
                    }
                }
                if (kept < std::size_t(config.minKept) || kept == 0) break;  // keep the previous estimate
                const bool same = std::equal(keep.begin(), keep.begin() + std::ptrdiff_t(m), prev.begin());
                c = sum / double(kept);
                std::copy(keep.begin(), keep.begin() + std::ptrdiff_t(m), prev.begin());
                if (same && it > 0) break;
            }
            // Final value and variance over the last accepted set (prev).
            double sum = 0.0, sv = 0.0;
            std::size_t kept = 0;
            for (std::size_t i = 0; i < m; ++i) {
                if (!prev[i]) continue;
                sum += val[i];
                ++kept;
            }
            if (kept == 0) {
                for (std::size_t i = 0; i < m; ++i) sum += val[i];
                kept = m;
                std::fill(prev.begin(), prev.begin() + std::ptrdiff_t(m), 1);
            }
            c = sum / double(kept);
            for (std::size_t i = 0; i < m; ++i)
                if (prev[i]) sv += sigma2(i, c);
            clipped += std::int64_t(m - kept);
            outImg[x] = float(c);
            outVar[x] = float(sv / double(kept * kept));
        }
    }
    if (clippedFraction) *clippedFraction = usable > 0 ? double(clipped) / double(usable) : 0.0;
    return out;
}

}  // namespace isr

namespace {

/// The ISR config of a calibration input: only the steps before the one the master measures.
IsrConfig inputConfig(const IsrConfig& config, bool bias, bool dark) {
    IsrConfig c = config;
    c.doBias = bias;
    c.doDark = dark;
    c.doFlat = false;
    c.doDefects = false;
    c.doInterpolate = false;
    c.doFringe = false;
    if (!bias) {
        c.doCrosstalk = false;  // no signal in a bias
        c.doLinearity = false;
    }
    return c;
}

void requireInputs(std::size_t n, const MasterConfig& mc, const char* what) {
    mc.validate();
    if (n < std::size_t(mc.minInputs)) {
        std::ostringstream os;
        os << what << ": " << n << " input exposures, at least " << mc.minInputs << " needed";
        throw InvalidInputError(os.str());
    }
}

void finishMaster(Exposure& master, const char* type, std::size_t nInputs, double clipFrac, const MasterConfig& mc,
                  const Detector& detector, const RawExposure& first) {
    PropertyList& md = master.metadata();
    md.set("CALIBTYP", type, "master calibration type");
    md.set("NINPUTS", std::int64_t(nInputs), "input exposures combined");
    md.set("CLIPFRAC", clipFrac, "fraction of input pixel values clipped");
    md.set("CLIPSIG", mc.clipSigma, "clip threshold, expected sigmas");
    VisitInfo vi;
    vi.instrument = first.visitInfo.instrument;
    master.setVisitInfo(vi);
    master.setDetector(detector.id());
}

/// master.variance += calib.variance x factor^2: the noise of a calibration subtracted from every input
/// (scaled by 1/scale_i, averaged: factor = mean(weight_i / scale_i)) does not average down.
void addCommonVariance(Exposure& master, const Exposure& calib, double factor) {
    if (!(calib.bbox() == master.bbox())) return;
    const ImageF& v = master.maskedImage().variance();
    const ImageF& cv = calib.variance();
    const float f2 = float(factor * factor);
    for (int y = 0; y < v.height(); ++y)
        for (int x = 0; x < v.width(); ++x)
            if (std::isfinite(cv(x, y))) v(x, y) += f2 * cv(x, y);
}

MaskPixel inputBadBits() {
    const Mask m;
    return m.planeBitMask(std::vector<std::string>{"BAD", "SAT", "NO_DATA"});
}

}  // namespace

Exposure makeMasterBias(const std::vector<RawExposure>& biases, const Detector& detector, const IsrCalibrations& partial,
                        const IsrConfig& config, const MasterConfig& masterConfig) {
    requireInputs(biases.size(), masterConfig, "makeMasterBias");
    const IsrConfig c = inputConfig(config, false, false);
    IsrCalibrations calibs;
    calibs.amplifiers = partial.amplifiers;
    std::vector<Exposure> processed;
    processed.reserve(biases.size());
    for (const RawExposure& raw : biases) processed.push_back(runIsr(raw, detector, calibs, c));
    double clip = 0.0;
    // A bias holds no photo-electrons: its variance plane is all readout noise.
    for (Exposure& e : processed) {
        const ImageF& v = e.maskedImage().variance();
        for (int y = 0; y < v.height(); ++y)
            for (int x = 0; x < v.width(); ++x) v(x, y) -= std::max(e.image()(x, y), 0.0f);
    }
    Exposure master = isr::combineExposures(processed, std::vector<double>(biases.size(), 1.0), inputBadBits(),
                                            masterConfig, &clip, false);
    finishMaster(master, "bias", biases.size(), clip, masterConfig, detector, biases.front());
    return master;
}

Exposure makeMasterBias(const std::vector<RawExposure>& biases, const Detector& detector, const IsrConfig& config,
                        const MasterConfig& masterConfig) {
    return makeMasterBias(biases, detector, IsrCalibrations{}, config, masterConfig);
}

Exposure makeMasterDark(const std::vector<RawExposure>& darks, const Detector& detector, const Exposure& masterBias,
                        const IsrCalibrations& partial, const IsrConfig& config, const MasterConfig& masterConfig) {
    requireInputs(darks.size(), masterConfig, "makeMasterDark");
    IsrConfig c = inputConfig(config, config.doBias, false);
    c.doCalibrationVariance = false;  // common to all inputs: added once after combining
    IsrCalibrations calibs;
    calibs.bias = &masterBias;
    calibs.crosstalk = partial.crosstalk;
    calibs.amplifiers = partial.amplifiers;
    std::vector<Exposure> processed;
    std::vector<double> scales;
    for (const RawExposure& raw : darks) {
        const double t = raw.visitInfo.darkTimeS;
        if (!(t > 0) || !std::isfinite(t))
            throw InvalidInputError("makeMasterDark: a dark of detector " + detector.name() + " has dark time " +
                                    std::to_string(t) + " s (must be > 0)");
        processed.push_back(runIsr(raw, detector, calibs, c));
        scales.push_back(t);
    }
    double clip = 0.0;
    Exposure master = isr::combineExposures(processed, scales, inputBadBits(), masterConfig, &clip);
    // The master bias noise common to all inputs is not in the variance plane (it is the dark's own
    // noise); its factor is recorded so runIsr can propagate it with the science exposure's bias.
    double a = 0;
    for (double t : scales) a += 1.0 / t / double(scales.size());
    finishMaster(master, "dark", darks.size(), clip, masterConfig, detector, darks.front());
    if (c.doBias) master.metadata().set("DKBIASF", a, "master-bias noise factor of this dark: mean(1/darktime), 1/s");
    return master;
}

Exposure makeMasterFlat(const std::vector<RawExposure>& flats, const Detector& detector, const Exposure& bias,
                        const Exposure& dark, const IsrCalibrations& partial, const IsrConfig& config,
                        const MasterConfig& masterConfig) {
    requireInputs(flats.size(), masterConfig, "makeMasterFlat");
    const std::string band = flats.front().visitInfo.band;
    for (const RawExposure& raw : flats) {
        if (raw.visitInfo.band != band)
            throw InvalidInputError("makeMasterFlat: flats of bands '" + band + "' and '" + raw.visitInfo.band +
                                    "' given for detector " + detector.name() + " (one band per master flat)");
    }
    IsrConfig c = inputConfig(config, config.doBias, config.doDark);
    c.doCalibrationVariance = false;  // common to all inputs: added once after combining
    IsrCalibrations calibs;
    calibs.bias = &bias;
    calibs.dark = &dark;
    calibs.crosstalk = partial.crosstalk;
    calibs.amplifiers = partial.amplifiers;
    const MaskPixel bad = inputBadBits();
    StatisticsControl sc;
    sc.badMask = bad;
    sc.properties = kStatMedian;
    std::vector<Exposure> processed;
    std::vector<double> scales;
    for (const RawExposure& raw : flats) {
        Exposure e = runIsr(raw, detector, calibs, c);
        const double med = makeStatistics(e.image(), e.mask(), sc).median;
        if (!(med > 0) || !std::isfinite(med))
            throw InvalidInputError("makeMasterFlat: a flat of detector " + detector.name() + " (band " + band +
                                    ") has median " + std::to_string(med) + " e- after ISR (must be > 0)");
        processed.push_back(std::move(e));
        scales.push_back(med);
    }
    double clip = 0.0;
    Exposure master = isr::combineExposures(processed, scales, bad, masterConfig, &clip);
    if (config.doCalibrationVariance) {
        double a = 0, b = 0;
        for (std::size_t i = 0; i < scales.size(); ++i) {
            a += 1.0 / scales[i] / double(scales.size());
            const double t = flats[i].visitInfo.darkTimeS;
            b += (std::isfinite(t) ? t : 0.0) / scales[i] / double(scales.size());
        }
        // A dark carrying DKBIASF already holds -bias x DKBIASF: the flat's bias factor is a - b x DKBIASF.
        const double biasInDark = c.doDark ? dark.metadata().getDouble("DKBIASF", 0.0) : 0.0;
        if (c.doBias) addCommonVariance(master, bias, a - b * biasInDark);
        if (c.doDark) addCommonVariance(master, dark, b);
    }
    // Normalise to median 1 over the usable pixels.
    StatisticsControl nc;
    nc.badMask = master.mask().planeBitMask(std::vector<std::string>{"BAD", "NO_DATA"});
    nc.properties = kStatMedian;
    const double norm = makeStatistics(master.image(), master.mask(), nc).median;
    if (!(norm > 0) || !std::isfinite(norm))
        throw InvalidInputError("makeMasterFlat: the combined flat of detector " + detector.name() + " has median " +
                                std::to_string(norm));
    master.image() *= float(1.0 / norm);
    master.variance() *= float(1.0 / (norm * norm));
    finishMaster(master, "flat", flats.size(), clip, masterConfig, detector, flats.front());
    master.metadata().set("FLATNORM", norm, "median of the combined flat before normalisation");
    master.metadata().set("BAND", band, "band of the flat");
    VisitInfo vi = master.visitInfo();
    vi.band = band;
    vi.physicalFilter = flats.front().visitInfo.physicalFilter;
    master.setVisitInfo(vi);
    return master;
}

}  // namespace drp
