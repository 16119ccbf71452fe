// CoaddPsf: the PSF of a coadd (or of a single warp): at any position of the coadd, the weighted mean of
// the PSFs of the inputs that cover that position, each warped onto the coadd's pixel grid.
//
// For a coadd position p (parent frame of the coadd WCS) and each input i whose validBox (in the input's
// own pixel frame; empty = everywhere) contains its position p_i = wcs_i.skyToPixel(coaddWcs.pixelToSky(p)):
//  * J_i = d p_i / d p, the local affine Jacobian of the coadd -> input mapping (central differences, 1 px);
//  * computeKernelImage(p): output pixel at integer offset u from the centre samples the input's centred
//    kernel image psf_i.computeKernelImage(p_i) at input offset J_i u with the warping kernel (the same
//    tabulated kernel as stages/coadd/Warper.h, lanczos3 by default; zero outside the input stamp);
//  * computeImage(p): output pixel q samples psf_i.computeImage(p_i) (the input's image of a point source
//    at p_i) at p_i + J_i (q - p): exactly what warping an image of a star at p_i produces (up to the affine
//    approximation of the mapping over the stamp, < 1e-6 px for TAN-SIP calexps), so the CoaddPsf matches
//    stars of a coadd of warps pixel for pixel, Lanczos smoothing included;
//  * each warped input is normalised to sum 1 and the result is sum_i w_i K_i / sum_i w_i (the weights are
//    the inputs' coadd weights, e.g. inverse mean variance), normalised to sum 1.
// If no input covers p (a gap, or a position off the coadd) every input is used, so measurement code that
// evaluates the PSF anywhere still gets a sensible model; inputsAt(p) tells the two cases apart.
// The output stamp is odd, 2 h + 1 with h = ceil(max_i h_i ||J_i^-1||) (h_i the half-width of input i's
// stamp), so the transformed input stamps fit.
//
// Persistence: the record stores every input exactly, so a coadd's PSF round-trips bit for bit through
// io/ExposureFits (one binary-table row, a fixed set of 8 columns whatever the number of inputs):
//   "version" {1}; "kernel" (kernel name, one character code per value); "coaddWcs" (flattened WCS, below);
//   "weights" (n); "validBoxes" (4 n: minX, minY, width, height); "ids" (n, the caller's input ids);
//   "inputWcs" (the n flattened WCSs, concatenated); "inputPsfs" (the n input PSF records, concatenated:
//   per record its type name length and character codes, its number of arrays, and per array the name
//   length, name characters, value count and values). A flattened WCS is crpix x, y; crval ra, dec
//   (radians); CD 1_1, 1_2, 2_1, 2_2; SIP order o then A and B ((o+1)^2 each, row-major a(p, q)); inverse
//   order o' then AP and BP. Every input PSF type must be registered to read the record back (the
//   drivers register MoffatPsf, PsfexPsf; GaussianPsf and ImagePsf are built in). Drivers call
//   registerCoaddPsf() at start-up; constructing a CoaddPsf also registers the type.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/Box.h"
#include "core/Psf.h"
#include "core/Wcs.h"

namespace drp {

/// Register "CoaddPsf" with Psf::registerType (idempotent, thread-safe).
void registerCoaddPsf();

/// One input of a coadd, as the CoaddPsf needs it.
struct CoaddPsfInput {
    std::shared_ptr<const Psf> psf;  ///< the input's PSF (in its own pixel frame)
    std::shared_ptr<const Wcs> wcs;  ///< the input's WCS
    double weight = 1.0;             ///< its weight in the coadd (> 0, finite)
    Box2I validBox;                  ///< where it contributes, in its own pixel frame (empty = everywhere)
    std::int64_t id = 0;             ///< caller's identifier (e.g. a packed visit/detector), kept in the record
};

class CoaddPsf final : public Psf {
public:
    static constexpr const char* kTypeName = "CoaddPsf";

    /// @param coaddWcs the WCS of the coadd's pixel grid
    /// @param inputs at least one, each with a PSF, a WCS and a positive finite weight
    /// @param kernel the warping kernel (stages/coadd/Lanczos.h names)
    /// Throws InvalidInputError (ConfigError for a bad kernel name).
    CoaddPsf(std::shared_ptr<const Wcs> coaddWcs, std::vector<CoaddPsfInput> inputs,
             const std::string& kernel = "lanczos3");
    static std::shared_ptr<const CoaddPsf> make(std::shared_ptr<const Wcs> coaddWcs, std::vector<CoaddPsfInput> inputs,
                                                const std::string& kernel = "lanczos3") {
        return std::make_shared<const CoaddPsf>(std::move(coaddWcs), std::move(inputs), kernel);
    }

    const std::shared_ptr<const Wcs>& coaddWcs() const { return coaddWcs_; }
    const std::vector<CoaddPsfInput>& inputs() const { return inputs_; }
    const std::string& kernelName() const { return kernel_; }
    /// Indices of the inputs whose validBox contains `position` (coadd frame).
    std::vector<std::size_t> inputsAt(Point2D position) const;
    /// The position in input i's pixel frame of coadd position `position`.
    Point2D inputPosition(std::size_t i, Point2D position) const;

private:
    Image<double> doComputeKernelImage(Point2D position) const override;
    Image<double> doComputeImage(Point2D position) const override;
    std::string doTypeName() const override { return kTypeName; }
    PsfRecord doToRecord() const override;
    /// Shared by both computes: sub-pixel (`centred` false) or centred kernel.
    Image<double> compute(Point2D position, bool centred) const;

    std::shared_ptr<const Wcs> coaddWcs_;
    std::vector<CoaddPsfInput> inputs_;
    std::string kernel_;
};

}  // namespace drp
