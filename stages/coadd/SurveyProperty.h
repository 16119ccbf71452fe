// SurveyProperty: survey property maps of one patch and band, accumulated while the coadd's inputs
// stream past (the driver calls add() with the same warps, in pass 0 of the CoaddAssembler), and an
// 8-bit rendering of a map that a driver can hand to a PNG writer (io/PngWriter.h; stages never write).
//
// Maps are on bins of binSize x binSize coadd pixels (binSize 1: per pixel); a bin's value is the
// mean over its pixels of the per-pixel quantity, where per input i, c_i = the number of its pixels in
// the bin that contribute (not NO_DATA, no excluded plane, finite), A the bin area (edge bins are
// smaller), w_i the input weight, s_i its photoScale:
//   nInputs       = sum_i c_i / A                         (mean number of inputs per pixel)
//   exposureTime  = sum_i t_i c_i / A                     (seconds)
//   psfSigma      = sqrt(sum_i w_i c_i sigma_i^2 / sum_i w_i c_i)   (pixels: the second-moment size of
//                   the coadd PSF, which is the weighted mixture of the input PSFs)
//   skyBackground = sum_i w_i c_i s_i sky_i / sum_i w_i c_i (coadd units per pixel)
//   depth         = zeroPoint - 2.5 log10(5 sqrt(Vbar * Neff)),  Neff = 4 pi psfSigma^2
//                   (the 5-sigma point-source limiting magnitude for PSF photometry of a Gaussian PSF
//                   on uncorrelated noise; Vbar = the mean coadd variance over the bin's finite pixels).
// Bins with no input are NaN in psfSigma, skyBackground and depth, 0 in nInputs and exposureTime.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/Box.h"
#include "core/Image.h"
#include "core/MaskedImage.h"
#include "stages/coadd/CoaddAssembler.h"

namespace drp {

/// Configuration of SurveyPropertyAccumulator. Plain value; compare with ==; check with validate().
struct SurveyPropertyConfig {
    /// Side of a map bin. Unit: coadd pixels. Bounds: [1, 4096]. Default 1.
    int binSize = 1;
    /// Magnitude of one coadd flux unit (31.4 for nJy). Unit: AB mag. Default 31.4.
    double zeroPointMag = 31.4;
    /// Pixels with any of these planes do not count (as CoaddConfig::excludedMaskPlanes).
    std::vector<std::string> excludedMaskPlanes{"NO_DATA", "BAD", "SAT", "EDGE"};

    void validate() const;
    friend bool operator==(const SurveyPropertyConfig&, const SurveyPropertyConfig&) = default;
};

/// The maps of one patch and band; each image covers the bins (xy0 = 0), bin (i, j) covers coadd
/// pixels [minX + i binSize, ...) x [minY + j binSize, ...).
struct SurveyPropertyMaps {
    Box2I patchBox;
    int binSize = 1;
    ImageF nInputs, exposureTime, psfSigma, skyBackground, depth;
};

class SurveyPropertyAccumulator {
public:
    SurveyPropertyAccumulator(const Box2I& patchBox, SurveyPropertyConfig config = {});
    /// Add one input (bbox equal to the patch; LogicError otherwise) with its weight (CoaddAssembler::add's
    /// return value).
    void add(const MaskedImageF& warp, const WarpMetadata& meta, double weight);
    /// The maps, with depth from the coadd's variance (same bbox as the patch).
    SurveyPropertyMaps finish(const MaskedImageF& coadd) const;
    int binsX() const { return nx_; }
    int binsY() const { return ny_; }

private:
    Box2I box_;
    SurveyPropertyConfig config_;
    int nx_ = 0, ny_ = 0;
    std::vector<double> n_, t_, w_, wPsf2_, wSky_;
    std::vector<std::int32_t> counts_;  // scratch: per-bin pixel count of the current input
};

/// How to turn a map into 8-bit pixels.
struct MapRenderConfig {
    enum class Colormap {
        Grey,     ///< one channel, black (low) to white (high)
        Viridis,  ///< three channels (RGB), a perceptually uniform dark-blue..yellow ramp
    };
    Colormap colormap = Colormap::Grey;
    /// Values mapped to 0 and 255 (clamped). NaN (default): the 1st and 99th percentiles of the finite values.
    double vmin = std::numeric_limits<double>::quiet_NaN();
    double vmax = std::numeric_limits<double>::quiet_NaN();
};

/// An 8-bit image buffer, rows top first (so the map's highest y row is row 0: north up for a
/// standard patch orientation), `channels` bytes per pixel.
struct ImageBuffer8 {
    int width = 0, height = 0, channels = 1;
    std::vector<std::uint8_t> pixels;
};

/// Render a map. Non-finite values are 0 (black).
ImageBuffer8 renderMap(const ImageF& map, const MapRenderConfig& config = {});

}  // namespace drp
