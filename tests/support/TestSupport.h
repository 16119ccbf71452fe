// Helpers shared by the test binaries: scratch directories, paths to shared data, seeded RNGs, star footprints.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/Footprint.h"
#include "core/Image.h"

namespace drp::test {

/// A fresh directory under the system temp dir, removed (recursively) when the object dies.
class TempDir {
public:
    explicit TempDir(const std::string& prefix = "drp-test");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

/// ../shared/data/real (from DRP_SHARED_DATA, set by CTest); empty path if it does not exist.
std::filesystem::path realDataDir();
/// The source tree root (DRP_SOURCE_DIR, set by CTest).
std::filesystem::path sourceDir();
/// /usr/bin/python3 if it has the named modules (e.g. "astropy,numpy"), else empty.
std::string pythonWith(const std::string& modules);
/// A circular footprint of `radius` pixels about the pixel nearest `position`, with one peak (id `id`) on the
/// brightest pixel of the 3 x 3 around it (as detection would put it on a star).
/// PsfexPsf components of `spatialOrder` for tests: term 0 is `base` plus Gaussian noise of `sigma`, the others that noise
/// alone (every pixel drawn from a generator seeded with `seed`); xy0 (0, 0).
std::vector<Image<double>> noisyPsfComponents(const Image<double>& base, int spatialOrder, std::uint64_t seed, double sigma);

std::shared_ptr<const Footprint> starFootprint(const ImageF& image, Point2D position, int radius, std::int64_t id);
/// Run a shell command, returning its exit status and filling `output` with stdout+stderr.
int runCommand(const std::string& command, std::string* output = nullptr);

}  // namespace drp::test
