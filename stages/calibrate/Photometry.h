// Photometry: the photometric zero point of one detector from reference stars matched to its sources.
//
// Conventions. The instrumental magnitude is m_inst = -2.5 log10(instFlux); the reference AB magnitude is
// m_ref = 31.4 - 2.5 log10(refFluxNjy). A colour term k (per band, mag per mag of colour) transforms the
// reference to the instrument's system: m_sys = m_ref + k * colour, colour = m_ref(blueBand) - m_ref(redBand)
// supplied by the caller per star (PhotometryMatch::refColourMag). The zero point ZP is the AB magnitude of
// one instrumental unit in that system: m_sys = ZP + m_inst, so each star gives
//     zp_i = m_ref_i - m_inst_i + k colour_i,   sigma_i^2 = (1.0857 instFluxErr/instFlux)^2
//                                                       + (1.0857 refFluxErr/refFlux)^2 + errorFloorMag^2,
// and PhotoCalib::fromZeroPoint(ZP, err) converts instrumental flux to nJy in the instrument's system (for
// a star of colour c the reference flux is that times 10^(0.4 k c)). The simulator's bands are exactly AB:
// every k defaults to 0.
//
// Estimator. Stars pass the S/N cuts (source and reference), then an iterated, inverse-variance-weighted
// least-squares fit of ZP (and, with fitColourTerm, of k: m_ref - m_inst = ZP - k colour) with clipping of
// |residual| / sigma_i > rejectSigma * max(1, robust scale of the normalised residuals); the first round
// clips about the median. The reported error is the formal weighted error times max(1, sqrt(chi^2/dof)), so
// it stays honest when the per-star errors are too small. Too few stars: NumericalError.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/PhotoCalib.h"

namespace drp {

/// A linear colour term of one band.
struct ColourTerm {
    std::string blueBand;      ///< colour = m(blueBand) - m(redBand) of the reference star
    std::string redBand;
    double coefficient = 0.0;  ///< k in m_sys = m_ref + k * colour, mag/mag [-10, 10]
    friend bool operator==(const ColourTerm&, const ColourTerm&) = default;
};

struct PhotometryConfig {
    /// Colour term per band (the band a PhotometryResult is for). Defaults: each of ugrizy with its redder
    /// neighbour (y with z - y), coefficient 0 (the simulator's AB system); a band not listed has no colour term.
    std::map<std::string, ColourTerm> colourTerms = {
        {"u", {"u", "g", 0.0}}, {"g", {"g", "r", 0.0}}, {"r", {"r", "i", 0.0}},
        {"i", {"i", "z", 0.0}}, {"z", {"z", "y", 0.0}}, {"y", {"z", "y", 0.0}}};
    double minSourceSnr = 10.0;   ///< sources with instFlux / instFluxErr below this are not used, [0, 1e9]
    double minRefSnr = 10.0;      ///< reference stars with refFlux / refFluxErr below this are not used, [0, 1e9]
    double rejectSigma = 3.0;     ///< clipping threshold, in sigma_i x robust scale, (1, 100]
    int iterations = 10;          ///< fit-and-clip rounds at most, [1, 100]
    int minStars = 5;             ///< stars needed after clipping (more when fitting the colour term: minStars + 1), [2, 1000000]
    double errorFloorMag = 0.0;   ///< added in quadrature to every star's magnitude error, mag [0, 1]
    bool fitColourTerm = false;   ///< fit k together with ZP (needs a spread of colours) instead of using colourTerms

    /// Throws ConfigError for values outside the bounds above or a colour term with an empty band name.
    void validate() const;
    /// The colour term of a band (empty bands and coefficient 0 when not configured).
    ColourTerm colourTerm(const std::string& band) const;
    friend bool operator==(const PhotometryConfig&, const PhotometryConfig&) = default;
};

/// A source matched to a reference star.
struct PhotometryMatch {
    double instFlux = 0.0;       ///< instrumental flux (ADU or e-), > 0 to be used
    double instFluxErr = 0.0;    ///< its standard error
    double refFluxNjy = 0.0;     ///< reference flux in this band, nJy
    double refFluxErrNjy = 0.0;  ///< nJy
    double refColourMag = 0.0;   ///< reference colour m(blueBand) - m(redBand) of the band's colour term, mag
};

struct PhotometryResult {
    PhotoCalib photoCalib{1.0};     ///< nJy per instrumental unit, with its error
    double zeroPointMag = 0.0;      ///< AB magnitude of one instrumental unit (instrument system)
    double zeroPointErrMag = 0.0;   ///< its standard error
    double rmsMag = 0.0;            ///< rms residual of the stars used
    int nUsed = 0;                  ///< stars in the final fit
    int nRejected = 0;              ///< stars passing the S/N cuts but clipped
    int nCandidates = 0;            ///< stars passing the S/N cuts (nUsed + nRejected)
    double colourTerm = 0.0;        ///< k used (configured, or fitted)
    double colourTermErr = 0.0;     ///< its error when fitted, else 0
    double reducedChi2 = 0.0;       ///< chi^2 / dof of the final fit
    std::vector<bool> used;         ///< per input match: used in the final fit
};

/// Throws ConfigError (validate), NumericalError when fewer than minStars (minStars + 1 when fitting the
/// colour term) usable stars remain.
PhotometryResult fitZeroPoint(const std::vector<PhotometryMatch>& matches, const std::string& band,
                              const PhotometryConfig& config);

}  // namespace drp
