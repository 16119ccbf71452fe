// PixelRows: the pixel-loop helpers shared by the measurement plugins and their kernels (GaussianCentroid,
// AdaptiveMoments), which need them without the plugin framework.
#pragma once

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/Mask.h"

namespace drp {

/// The test every plugin applies to a pixel before using it: a finite value, a finite variance >= 0 and
/// none of `badBits` in its mask. Branch-free (the terms are and-ed as bits), so a caller may fold it into
/// a branch-free selection.
template <typename T>
inline bool usablePixel(T value, float variance, MaskPixel mask, MaskPixel badBits) {
    return std::isfinite(value) & std::isfinite(variance) & (variance >= 0.0f) & ((mask & badBits) == 0);
}

/// The columns of one row, within [minX, maxX], where `inside(x)` holds, for a test that holds on one
/// interval of the row (a disk, an ellipse: any region convex along rows). The estimate [x0, x1] (e.g. the
/// roots of the region's boundary equation on this row) is clamped to [minX, maxX], widened while the next
/// column out passes and narrowed while an end column fails: the result is exactly the set a scan of
/// [minX, maxX] with `inside` selects whenever the estimate overlaps or touches the true interval, or each
/// of its ends is within one column of the true one (an estimate computed from the boundary equation is off
/// by rounding only). Empty: first > second.
template <typename Inside>
std::pair<int, int> exactRowInterval(int x0, int x1, int minX, int maxX, const Inside& inside) {
    x0 = std::max(x0, minX);
    x1 = std::min(x1, maxX);
    while (x0 > minX && inside(x0 - 1)) --x0;
    while (x1 < maxX && inside(x1 + 1)) ++x1;
    while (x0 <= x1 && !inside(x0)) ++x0;
    while (x1 >= x0 && !inside(x1)) --x1;
    return {x0, x1};
}

}  // namespace drp
