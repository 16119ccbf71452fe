// Background: a smooth model of the sky level, from sigma-clipped statistics in bins, interpolated
// between bin centres (as afw/meas_algorithms' SubtractBackgroundTask).
//
// Bins: the image (width W) is cut into nx = max(1, round(W / binSize)) columns of bins with integer
// edges x_i = minX + floor(i W / nx) (likewise in y), so bins differ in size by at most one pixel. A bin's
// value is the clipped mean (or median) of its usable pixels: finite, with no bit of
// BackgroundConfig::ignoredMaskPlanes set. Its position is the geometric centre of the bin. A bin with
// fewer than max(3, minGoodFraction x area) usable pixels is "empty" and is filled by the mean of its
// non-empty 8-neighbours, repeated until every bin has a value (InvalidInputError if no bin has data).
//
// Interpolation (Background::image): tensor product of one-dimensional interpolants through the bin
// values at the bin centres: first along x in every row of bins, then along y in every column of
// pixels. NaturalSpline is the natural cubic spline (second derivative zero at the end knots); Linear is
// piecewise linear. Beyond the outermost bin centres both extrapolate linearly with the end slope (the
// natural spline's continuation). An axis with fewer than BackgroundConfig::minBinsForSpline bins uses
// Linear; an axis with one bin is constant.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/Box.h"
#include "core/Image.h"
#include "core/MaskedImage.h"
#include "core/Table.h"

namespace drp {

/// Configuration of estimateBackground. Plain value; compare with ==; check with validate().
struct BackgroundConfig {
    enum class Statistic {
        ClippedMean,  ///< iterative sigma-clipped mean (core/Statistics.h)
        Median,       ///< median
    };
    enum class Interpolation {
        NaturalSpline,  ///< natural cubic spline through the bin centres (bicubic-like, C2)
        Linear,         ///< (bi)linear
    };

    /// Bin side length. Unit: pixels. Bounds: [4, 65536]. Default 128 (Rubin's calexp background).
    int binSize = 128;
    /// Clipping threshold of the clipped mean. Unit: sigma. Bounds: > 0. Default 3.
    double clipSigma = 3.0;
    /// Clipping iterations of the clipped mean. Bounds: [1, 100]. Default 3.
    int clipIterations = 3;
    /// Statistic of a bin. Default ClippedMean.
    Statistic statistic = Statistic::ClippedMean;
    /// Pixels with any of these mask planes are ignored (planes the mask does not have are skipped).
    std::vector<std::string> ignoredMaskPlanes{"BAD", "SAT", "EDGE", "DETECTED", "DETECTED_NEGATIVE", "NO_DATA", "CR"};
    /// Interpolation between bin centres. Default NaturalSpline.
    Interpolation interpolation = Interpolation::NaturalSpline;
    /// An axis with fewer bins than this is interpolated linearly. Bounds: [2, 1000]. Default 4.
    int minBinsForSpline = 4;
    /// A bin needs at least this fraction of usable pixels (and at least 3). Bounds: [0, 1]. Default 0.05.
    double minGoodFraction = 0.05;
    /// Every sampleStep-th pixel of every sampleStep-th row of a bin is used (1: all). A rough first estimate that
    /// a re-estimate corrects need not see every pixel: 2 is 4x cheaper, and the noise of a bin's value doubles.
    /// Counts are then of the sampled pixels. Bounds: [1, 16]. Default 1.
    int sampleStep = 1;
    /// The clipped mean starts from the median and MAD of every clipStartStride-th usable pixel of the bin
    /// (StatisticsControl::clipStartStride): the clipping iterations use them all. Bounds: [1, 64]. Default 4.
    int clipStartStride = 4;

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const BackgroundConfig&, const BackgroundConfig&) = default;
};

/// A binned background model: bin values at bin centres over an image bbox, plus the interpolation.
class Background {
public:
    Background() = default;
    /// @param bbox the image the bins cover; @param xCentres, yCentres the bin centres (strictly
    /// increasing, parent frame, pixels); @param values ny x nx bin values, row-major (y outer);
    /// @param counts usable pixels per bin (same layout; may be empty). Throws InvalidInputError on
    /// inconsistent sizes, non-finite values or non-increasing centres.
    Background(const Box2I& bbox, std::vector<double> xCentres, std::vector<double> yCentres,
               std::vector<double> values, BackgroundConfig::Interpolation interpolation,
               int minBinsForSpline = 4, std::vector<std::int64_t> counts = {});

    /// The model over `box` (any box, parent frame; extrapolated outside the bin centres).
    ImageF image(const Box2I& box) const;
    /// The model over bbox().
    ImageF image() const { return image(bbox_); }
    /// The model at one position (parent frame): the same value image() gives at a pixel centre.
    double evaluate(Point2D position) const;

    const Box2I& bbox() const { return bbox_; }
    int nx() const { return int(xCentres_.size()); }
    int ny() const { return int(yCentres_.size()); }
    const std::vector<double>& xCentres() const { return xCentres_; }
    const std::vector<double>& yCentres() const { return yCentres_; }
    /// Bin values, ny rows of nx (row-major).
    const std::vector<double>& values() const { return values_; }
    double value(int ix, int iy) const { return values_[std::size_t(iy) * xCentres_.size() + std::size_t(ix)]; }
    /// Usable pixels per bin (0 for a bin filled from its neighbours); empty if not known.
    const std::vector<std::int64_t>& counts() const { return counts_; }
    BackgroundConfig::Interpolation interpolation() const { return interpolation_; }
    int minBinsForSpline() const { return minBinsForSpline_; }
    bool empty() const { return values_.empty(); }

    /// One row per bin: ix, iy (int32), xCentre, yCentre, value (float64, pixel / pixel / image units),
    /// count (int64). Metadata: BKG_X0, BKG_Y0, BKG_WIDTH, BKG_HEIGHT (the bbox), BKG_NX, BKG_NY,
    /// BKG_INTERP ("NaturalSpline" | "Linear"), BKG_MINSPLN.
    Table toTable() const;
    /// Inverse of toTable (bit-exact). Throws InvalidInputError / NotFoundError for a malformed table.
    static Background fromTable(const Table& table);

    friend bool operator==(const Background&, const Background&) = default;

    /// Add `other`'s bin values to this one's: the model becomes the sum of the two models (the interpolation is
    /// linear in the bin values), e.g. a first estimate plus its re-estimate with the detections masked. The
    /// counts become `other`'s (its usable pixels, the later estimate's). Throws InvalidInputError unless both
    /// have the same bbox, bin centres and interpolation.
    Background& operator+=(const Background& other);

    /// The model over `box`, one row at a time: sink(y, row) gets row y (0-based within box) as
    /// box.width() floats, the values image(box) holds (the buffer is reused between calls).
    void modelRows(const Box2I& box, const std::function<void(int, const float*)>& sink) const;

private:
    Box2I bbox_;
    std::vector<double> xCentres_, yCentres_, values_;
    std::vector<std::int64_t> counts_;
    BackgroundConfig::Interpolation interpolation_ = BackgroundConfig::Interpolation::NaturalSpline;
    int minBinsForSpline_ = 4;
};

/// Measure the background of `image` (see the header comment). Throws ConfigError for a bad config and
/// InvalidInputError if no bin has usable pixels.
Background estimateBackground(const MaskedImageF& image, const BackgroundConfig& config);

/// image -= background.image(image.bbox()) (the variance is unchanged).
void subtractBackground(MaskedImageF& image, const Background& background);

}  // namespace drp
