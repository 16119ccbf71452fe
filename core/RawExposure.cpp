#include "core/RawExposure.h"

#include <sstream>

#include "core/Error.h"

namespace drp {

void RawExposure::validate(const Detector& detector) const {
    const std::string where = "raw exposure of detector " + detector.name() + " (id " + std::to_string(detector.id()) + ")";
    if (detectorId != detector.id()) {
        throw InvalidInputError(where + ": the raw claims detector id " + std::to_string(detectorId));
    }
    const auto& amps = detector.amplifiers();
    if (amplifiers.size() != amps.size()) {
        throw InvalidInputError(where + ": " + std::to_string(amplifiers.size()) + " amplifier images for " +
                                std::to_string(amps.size()) + " amplifiers");
    }
    for (std::size_t i = 0; i < amps.size(); ++i) {
        const Image<std::int32_t>& img = amplifiers[i];
        if (!(img.bbox() == amps[i].rawBBox)) {
            std::ostringstream os;
            os << where << ": amplifier " << amps[i].name << " image covers " << img.bbox() << ", expected "
               << amps[i].rawBBox;
            throw InvalidInputError(os.str());
        }
        for (int y = 0; y < img.height(); ++y) {
            const std::int32_t* row = img.row(y);
            for (int x = 0; x < img.width(); ++x) {
                if (row[x] < 0 || row[x] > 65535) {
                    std::ostringstream os;
                    os << where << ": amplifier " << amps[i].name << " pixel (" << x << ", " << y << ") = " << row[x]
                       << " ADU is outside [0, 65535]";
                    throw InvalidInputError(os.str());
                }
            }
        }
    }
}

Image<std::int32_t> RawExposure::assembleData(const Detector& detector) const {
    validate(detector);
    Image<std::int32_t> out(detector.bbox(), 0);
    for (std::size_t i = 0; i < amplifiers.size(); ++i) assembleAmplifier(detector.amplifiers()[i], amplifiers[i], out);
    return out;
}

}  // namespace drp
