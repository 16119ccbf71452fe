// CoaddFlavor: which inputs go into a coadd (deep, best-seeing, short-period), and the multi-band
// detection coadd made from per-band coadds (DPDD section 4.4.3).
//
// Selection (selectCoaddInputs), over the inputs' WarpMetadata:
//   * Deep: every input.
//   * BestSeeing: inputs whose psfSigmaPx <= the seeingQuantile quantile of the inputs' finite psfSigmaPx
//     (core/Statistics quantile(): linear between order statistics, numpy's default), e.g. 0.25 = the
//     first quartile of the realised seeing. At least one input (the best) is always selected. This is the per-patch rule; a campaign selects survey-wide instead
//     (selectBestSeeingVisits below, as Rubin's best-seeing visit selection does), so that every
//     patch of a band uses the same visits.
//   * ShortPeriod: inputs with mjdBegin <= mjd < mjdEnd (e.g. one year of the survey).
// The result lists the selected indices in increasing order; a driver streams only those to a
// CoaddAssembler.
//
// Survey-wide best seeing (selectBestSeeingVisits): given every visit of one band with its seeing (the
// driver uses the median over the visit's detectors of the PSF determinant radius in arcsec), the visits
// whose seeing is <= the quantile of all those visits' seeing. Visits with a non-finite seeing are
// neither counted nor selected. Deterministic: the result depends only on the set of (visit, seeing)
// pairs, not on their order.
//
// Detection coadd (makeDetectionCoadd) from per-band coadds on the same grid:
//   * WeightedSum: I = sum_b I_b / V_b / sum_b 1 / V_b, V = 1 / sum_b 1 / V_b: the inverse-variance
//     weighted mean of the bands (the optimal detection image for a flat-spectrum source);
//   * Chi2 (Szalay, Connolly & Szokoly 1999): I = sum_b I_b^2 / V_b - n_b, V = 2 n_b, with n_b the
//     number of bands that have data at the pixel, so that pure noise has mean 0 and variance 2 n_b
//     (sensitive to sources of any colour, but not linear in flux).
// Pixels that are NO_DATA or non-finite in a band are skipped for that band; a pixel with no band is
// NO_DATA (NaN image and variance). The other mask planes are OR-ed over the bands that contribute.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/MaskedImage.h"
#include "stages/coadd/CoaddAssembler.h"

namespace drp {

/// Which inputs a coadd uses. Plain value; compare with ==; check with validate().
struct CoaddFlavorConfig {
    enum class Kind {
        Deep,         ///< all inputs
        BestSeeing,   ///< the best-seeing quantile
        ShortPeriod,  ///< a date range
    };
    /// The flavour. Default Deep.
    Kind kind = Kind::Deep;
    /// BestSeeing: quantile of the seeing distribution kept. Bounds: (0, 1]. Default 0.25.
    double seeingQuantile = 0.25;
    /// ShortPeriod: first MJD included. Unit: MJD.
    double mjdBegin = 0.0;
    /// ShortPeriod: first MJD excluded. Unit: MJD. Bounds: > mjdBegin.
    double mjdEnd = 1e6;

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const CoaddFlavorConfig&, const CoaddFlavorConfig&) = default;
};

/// Indices (increasing) of the inputs the flavour selects.
std::vector<std::size_t> selectCoaddInputs(const std::vector<WarpMetadata>& inputs, const CoaddFlavorConfig& config);

/// One visit of a band and its seeing (any unit, the same for every visit).
struct VisitSeeing {
    std::int64_t visit = 0;
    double seeing = 0.0;
};

/// The survey-wide best-seeing threshold of one band: the quantile (core/Statistics quantile(); q in
/// [0, 1], ConfigError otherwise) of the finite seeings (NaN if none).
double bestSeeingThreshold(const std::vector<VisitSeeing>& visits, double q);

/// The visits (increasing visit id, each once) whose finite seeing is <= bestSeeingThreshold(visits,
/// quantile). quantile in (0, 1] (ConfigError otherwise).
std::vector<std::int64_t> selectBestSeeingVisits(const std::vector<VisitSeeing>& visits, double quantile);

enum class DetectionCoaddKind {
    WeightedSum,  ///< inverse-variance weighted mean of the bands
    Chi2,         ///< sum of squared S/N minus the number of bands
};

/// The multi-band detection coadd of per-band coadds (same bbox, LogicError otherwise; at least one).
MaskedImageF makeDetectionCoadd(const std::vector<MaskedImageF>& bandCoadds, DetectionCoaddKind kind);

}  // namespace drp
