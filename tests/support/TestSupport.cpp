#include "tests/support/TestSupport.h"

#include <array>
#include <cmath>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <sys/wait.h>
#include <unistd.h>

namespace drp::test {

TempDir::TempDir(const std::string& prefix) {
    static std::atomic<int> counter{0};
    auto base = std::filesystem::temp_directory_path();
    for (int attempt = 0;; ++attempt) {
        auto p = base / (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        if (std::filesystem::create_directory(p)) {
            path_ = p;
            break;
        }
    }
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::filesystem::path realDataDir() {
    const char* env = std::getenv("DRP_SHARED_DATA");
    std::filesystem::path p = env ? std::filesystem::path(env) / "real" : sourceDir() / ".." / "shared" / "data" / "real";
    return std::filesystem::exists(p) ? p : std::filesystem::path();
}

std::filesystem::path sourceDir() {
    const char* env = std::getenv("DRP_SOURCE_DIR");
    return env ? std::filesystem::path(env) : std::filesystem::current_path();
}

int runCommand(const std::string& command, std::string* output) {
    std::string cmd = command + " 2>&1";
    FILE* pipe = ::popen(cmd.c_str(), "r");
    if (!pipe) return -1;
    std::array<char, 4096> buf{};
    std::string out;
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
    int status = ::pclose(pipe);
    if (output) *output = out;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string pythonWith(const std::string& modules) {
    const std::string py = "/usr/bin/python3";
    if (!std::filesystem::exists(py)) return {};
    return runCommand(py + " -c 'import " + modules + "'") == 0 ? py : std::string();
}

std::vector<Image<double>> noisyPsfComponents(const Image<double>& base, int spatialOrder, std::uint64_t seed, double sigma) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> g(0.0, sigma);
    std::vector<Image<double>> comps;
    const int terms = (spatialOrder + 1) * (spatialOrder + 2) / 2;
    for (int k = 0; k < terms; ++k) {
        Image<double> c = k == 0 ? base.clone() : Image<double>(base.width(), base.height(), 0.0);
        for (int y = 0; y < c.height(); ++y)
            for (int x = 0; x < c.width(); ++x) c(x, y) += g(rng);
        c.setXY0({0, 0});
        comps.push_back(c);
    }
    return comps;
}

std::shared_ptr<const Footprint> starFootprint(const ImageF& image, Point2D position, int radius, std::int64_t id) {
    const Point2I c{int(std::lround(position.x)), int(std::lround(position.y))};
    PeakRecord peak;
    peak.id = id;
    peak.peakValue = -1e30f;
    for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
            const float v = image(c.x + dx, c.y + dy);
            if (v > peak.peakValue) peak.peakValue = v, peak.ix = c.x + dx, peak.iy = c.y + dy;
        }
    peak.x = peak.ix, peak.y = peak.iy;
    return std::make_shared<const Footprint>(SpanSet::fromShape(radius, Stencil::CIRCLE, c), std::vector<PeakRecord>{peak});
}

}  // namespace drp::test
