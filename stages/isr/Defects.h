// Defect finding from master calibrations (as cp_pipe's findDefects): pixels whose flat response is far
// from the local level (dead/low columns, unusually hot-responding pixels) and pixels whose dark current
// stands out from the detector's (hot pixels). Runs of bad pixels in one column become one box.
#pragma once

#include <vector>

#include "core/Box.h"
#include "core/Exposure.h"
#include "stages/isr/IsrConfig.h"

namespace drp {

/// Bad pixels of a detector, as boxes in the masters' (assembled) frame, sorted by (x, y).
/// The flat gives pixels below flatLowRatio (or above flatHighRatio) x the local median (medians of
/// localBoxSize blocks of unmasked pixels, bilinearly interpolated); the dark gives pixels above
/// median + max(hotSigma x madSigma, hotMinExcessEPerS). Either master may be empty (bbox empty): then it
/// is not used. Throws InvalidInputError if both are empty or their bboxes differ.
std::vector<Box2I> findDefects(const Exposure& masterFlat, const Exposure& masterDark, const DefectConfig& config);

namespace isr {

/// Merge flagged pixels (a char per pixel of `bbox`, raster order, nonzero = bad) into boxes, one per
/// run of one column allowing gaps of at most `columnGap` good pixels; sorted by (x, y).
std::vector<Box2I> mergeColumnRuns(const std::vector<char>& flags, const Box2I& bbox, int columnGap);

/// Local level of an image: medians of blockSize x blockSize blocks of finite pixels without `badBits`,
/// bilinearly interpolated between block centres (constant beyond the outer centres).
ImageF localMedian(const ImageF& image, const Mask& mask, MaskPixel badBits, int blockSize);

}  // namespace isr
}  // namespace drp
