#include "stages/isr/Defects.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/Error.h"
#include "core/Statistics.h"

namespace drp {

namespace isr {

std::vector<Box2I> mergeColumnRuns(const std::vector<char>& flags, const Box2I& bbox, int columnGap) {
    const int w = bbox.width(), h = bbox.height();
    if (flags.size() != std::size_t(w) * std::size_t(h)) throw LogicError("mergeColumnRuns: flags do not cover the box");
    std::vector<Box2I> out;
    auto at = [&](int x, int y) { return flags[std::size_t(y) * std::size_t(w) + std::size_t(x)] != 0; };
    for (int x = 0; x < w; ++x) {
        int y = 0;
        while (y < h) {
            if (!at(x, y)) {
                ++y;
                continue;
            }
            int end = y;  // last flagged pixel of the run
            for (int k = y + 1; k < h && k <= end + columnGap + 1; ++k)
                if (at(x, k)) end = k;
            out.push_back(Box2I({bbox.minX() + x, bbox.minY() + y}, 1, end - y + 1));
            y = end + 1;
        }
    }
    return out;
}

ImageF localMedian(const ImageF& image, const Mask& mask, MaskPixel badBits, int blockSize) {
    const int w = image.width(), h = image.height();
    const int nx = std::max(1, (w + blockSize - 1) / blockSize), ny = std::max(1, (h + blockSize - 1) / blockSize);
    std::vector<double> block(std::size_t(nx) * std::size_t(ny), std::numeric_limits<double>::quiet_NaN());
    std::vector<double> values, all;
    for (int by = 0; by < ny; ++by) {
        for (int bx = 0; bx < nx; ++bx) {
            values.clear();
            for (int y = by * blockSize; y < std::min(h, (by + 1) * blockSize); ++y) {
                const float* r = image.row(y);
                const MaskPixel* m = mask.row(y);
                for (int x = bx * blockSize; x < std::min(w, (bx + 1) * blockSize); ++x)
                    if (!(m[x] & badBits) && std::isfinite(r[x])) values.push_back(r[x]);
            }
            if (values.empty()) continue;
            const std::size_t mid = values.size() / 2;
            std::nth_element(values.begin(), values.begin() + std::ptrdiff_t(mid), values.end());
            block[std::size_t(by) * std::size_t(nx) + std::size_t(bx)] = values[mid];
            all.push_back(values[mid]);
        }
    }
    double fallback = 0.0;
    if (!all.empty()) {
        std::nth_element(all.begin(), all.begin() + std::ptrdiff_t(all.size() / 2), all.end());
        fallback = all[all.size() / 2];
    }
    for (double& b : block)
        if (!std::isfinite(b)) b = fallback;
    // Bilinear interpolation between block centres.
    auto axis = [&](int n, int size) {
        std::vector<double> centre(static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) centre[std::size_t(i)] = 0.5 * (i * blockSize + std::min(size, (i + 1) * blockSize) - 1);
        std::vector<std::pair<int, double>> map(static_cast<std::size_t>(size));  // (lower block, weight of the upper one)
        int i = 0;
        for (int p = 0; p < size; ++p) {
            while (i + 1 < n && centre[std::size_t(i + 1)] <= p) ++i;
            double f = 0.0;
            if (i + 1 < n && p > centre[std::size_t(i)])
                f = (p - centre[std::size_t(i)]) / (centre[std::size_t(i + 1)] - centre[std::size_t(i)]);
            map[std::size_t(p)] = {i, f};
        }
        return map;
    };
    const auto mx = axis(nx, w), my = axis(ny, h);
    ImageF out(image.bbox(), 0.0f);
    for (int y = 0; y < h; ++y) {
        const auto [j, fy] = my[std::size_t(y)];
        const int j1 = std::min(j + 1, ny - 1);
        float* o = out.row(y);
        for (int x = 0; x < w; ++x) {
            const auto [i, fx] = mx[std::size_t(x)];
            const int i1 = std::min(i + 1, nx - 1);
            auto b = [&](int bx, int by) { return block[std::size_t(by) * std::size_t(nx) + std::size_t(bx)]; };
            const double v = (1 - fy) * ((1 - fx) * b(i, j) + fx * b(i1, j)) + fy * ((1 - fx) * b(i, j1) + fx * b(i1, j1));
            o[x] = float(v);
        }
    }
    return out;
}

}  // namespace isr

std::vector<Box2I> findDefects(const Exposure& masterFlat, const Exposure& masterDark, const DefectConfig& config) {
    config.validate();
    const bool useFlat = !masterFlat.bbox().empty(), useDark = !masterDark.bbox().empty();
    if (!useFlat && !useDark) throw InvalidInputError("findDefects: neither a master flat nor a master dark given");
    if (useFlat && useDark && !(masterFlat.bbox() == masterDark.bbox()))
        throw InvalidInputError("findDefects: the master flat and dark cover different boxes");
    const Box2I bbox = useFlat ? masterFlat.bbox() : masterDark.bbox();
    const int w = bbox.width(), h = bbox.height();
    std::vector<char> flags(std::size_t(w) * std::size_t(h), 0);

    if (useFlat) {
        const MaskPixel noData = masterFlat.mask().planeBitMask(std::vector<std::string>{"BAD", "NO_DATA"});
        const ImageF local = isr::localMedian(masterFlat.image(), masterFlat.mask(), noData, config.localBoxSize);
        for (int y = 0; y < h; ++y) {
            const float* f = masterFlat.image().row(y);
            const float* l = local.row(y);
            for (int x = 0; x < w; ++x) {
                const double v = f[x], ref = l[x];
                const bool bad = !std::isfinite(v) || v < config.flatLowRatio * ref ||
                                 (config.flatHighRatio > 0 && v > config.flatHighRatio * ref);
                if (bad) flags[std::size_t(y) * std::size_t(w) + std::size_t(x)] = 1;
            }
        }
    }
    if (useDark) {
        StatisticsControl sc;
        sc.badMask = masterDark.mask().planeBitMask(std::vector<std::string>{"BAD", "NO_DATA"});
        sc.properties = kStatMedian | kStatMadSigma;
        const Statistics st = makeStatistics(masterDark.image(), masterDark.mask(), sc);
        if (!std::isfinite(st.median) || !std::isfinite(st.madSigma))
            throw InvalidInputError("findDefects: the master dark has no usable pixel");
        const double threshold = st.median + std::max(config.hotSigma * st.madSigma, config.hotMinExcessEPerS);
        for (int y = 0; y < h; ++y) {
            const float* d = masterDark.image().row(y);
            for (int x = 0; x < w; ++x)
                if (!std::isfinite(d[x]) || d[x] > threshold) flags[std::size_t(y) * std::size_t(w) + std::size_t(x)] = 1;
        }
    }
    return isr::mergeColumnRuns(flags, bbox, config.columnGap);
}

}  // namespace drp
