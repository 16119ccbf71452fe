#include "core/Camera.h"

#include <cmath>
#include <set>
#include <sstream>

#include "core/Error.h"

namespace drp {

// ---------------------------------------------------------------------------------------------
// Amplifier

Point2I Amplifier::rawToAssembled(Point2I raw) const {
    if (!rawDataBBox.contains(raw)) {
        std::ostringstream os;
        os << "amplifier " << name << ": raw pixel (" << raw.x << ", " << raw.y << ") is outside the data region "
           << rawDataBBox;
        throw LogicError(os.str());
    }
    const int u = raw.x - rawDataBBox.minX(), v = raw.y - rawDataBBox.minY();
    return {rawFlipX() ? bbox.maxX() - u : bbox.minX() + u, rawFlipY() ? bbox.maxY() - v : bbox.minY() + v};
}

Point2I Amplifier::assembledToRaw(Point2I p) const {
    if (!bbox.contains(p)) {
        std::ostringstream os;
        os << "amplifier " << name << ": pixel (" << p.x << ", " << p.y << ") is outside " << bbox;
        throw LogicError(os.str());
    }
    const int u = rawFlipX() ? bbox.maxX() - p.x : p.x - bbox.minX();
    const int v = rawFlipY() ? bbox.maxY() - p.y : p.y - bbox.minY();
    return {rawDataBBox.minX() + u, rawDataBBox.minY() + v};
}

Box2I Amplifier::rawToAssembled(const Box2I& raw) const {
    if (raw.empty()) return {};
    const Point2I a = rawToAssembled(raw.min()), b = rawToAssembled(raw.max());
    return Box2I::fromCorners({std::min(a.x, b.x), std::min(a.y, b.y)}, {std::max(a.x, b.x), std::max(a.y, b.y)});
}

Box2I Amplifier::assembledToRaw(const Box2I& assembled) const {
    if (assembled.empty()) return {};
    const Point2I a = assembledToRaw(assembled.min()), b = assembledToRaw(assembled.max());
    return Box2I::fromCorners({std::min(a.x, b.x), std::min(a.y, b.y)}, {std::max(a.x, b.x), std::max(a.y, b.y)});
}

void Amplifier::validate() const {
    auto fail = [&](const std::string& what) { throw ConfigError("amplifier " + name + ": " + what); };
    if (name.empty()) fail("needs a name");
    if (bbox.empty() || rawDataBBox.empty()) fail("empty data region");
    if (bbox.width() != rawDataBBox.width() || bbox.height() != rawDataBBox.height())
        fail("raw data and assembled boxes differ in size");
    const Box2I* boxes[] = {&rawDataBBox, &rawPrescanBBox, &rawSerialOverscanBBox, &rawParallelOverscanBBox};
    for (int i = 0; i < 4; ++i) {
        if (!rawBBox.contains(*boxes[i])) fail("a raw region lies outside rawBBox");
        for (int j = 0; j < i; ++j)
            if (boxes[i]->overlaps(*boxes[j])) fail("raw regions overlap");
    }
    if (!(gain > 0)) fail("gain must be > 0");
    if (!(readNoise >= 0)) fail("read noise must be >= 0");
    if (!(saturation > 0)) fail("saturation must be > 0");
}

template <typename T>
void assembleAmplifier(const Amplifier& amp, const Image<T>& raw, const Image<T>& assembled) {
    if (!raw.bbox().contains(amp.rawDataBBox) || !assembled.bbox().contains(amp.bbox))
        throw LogicError("assembleAmplifier: images do not cover amplifier " + amp.name);
    const int w = amp.bbox.width(), h = amp.bbox.height();
    const bool fx = amp.rawFlipX(), fy = amp.rawFlipY();
    for (int v = 0; v < h; ++v) {
        const T* in = raw.row(amp.rawDataBBox.minY() + v - raw.xy0().y) + (amp.rawDataBBox.minX() - raw.xy0().x);
        const int ay = fy ? amp.bbox.maxY() - v : amp.bbox.minY() + v;
        T* out = assembled.row(ay - assembled.xy0().y) - assembled.xy0().x;
        if (fx) {
            for (int u = 0; u < w; ++u) out[amp.bbox.maxX() - u] = in[u];
        } else {
            std::copy(in, in + w, out + amp.bbox.minX());
        }
    }
}

template <typename T>
Image<T> disassembleAmplifier(const Amplifier& amp, const Image<T>& assembled, T fill) {
    if (!assembled.bbox().contains(amp.bbox))
        throw LogicError("disassembleAmplifier: image does not cover amplifier " + amp.name);
    Image<T> raw(amp.rawBBox, fill);
    const int w = amp.bbox.width(), h = amp.bbox.height();
    const bool fx = amp.rawFlipX(), fy = amp.rawFlipY();
    for (int v = 0; v < h; ++v) {
        T* out = raw.row(amp.rawDataBBox.minY() + v - raw.xy0().y) + (amp.rawDataBBox.minX() - raw.xy0().x);
        const int ay = fy ? amp.bbox.maxY() - v : amp.bbox.minY() + v;
        const T* in = assembled.row(ay - assembled.xy0().y) - assembled.xy0().x;
        if (fx) {
            for (int u = 0; u < w; ++u) out[u] = in[amp.bbox.maxX() - u];
        } else {
            std::copy(in + amp.bbox.minX(), in + amp.bbox.minX() + w, out);
        }
    }
    return raw;
}

#define DRP_INSTANTIATE_AMP(T)                                                               \
    template void assembleAmplifier<T>(const Amplifier&, const Image<T>&, const Image<T>&); \
    template Image<T> disassembleAmplifier<T>(const Amplifier&, const Image<T>&, T);
DRP_INSTANTIATE_AMP(float)
DRP_INSTANTIATE_AMP(double)
DRP_INSTANTIATE_AMP(std::int32_t)
DRP_INSTANTIATE_AMP(std::uint16_t)
#undef DRP_INSTANTIATE_AMP

// ---------------------------------------------------------------------------------------------
// Detector

Detector::Detector(int id, std::string name, Box2I bbox, double pixelSizeMicrons, Point2D focalPlaneCenter,
                   double yaw, std::vector<Amplifier> amplifiers)
    : id_(id), name_(std::move(name)), bbox_(bbox), pixelSizeMicrons_(pixelSizeMicrons), center_(focalPlaneCenter),
      yaw_(yaw), cosYaw_(std::cos(yaw)), sinYaw_(std::sin(yaw)), amplifiers_(std::move(amplifiers)) {
    auto fail = [&](const std::string& what) { throw ConfigError("detector " + name_ + ": " + what); };
    if (bbox_.empty()) fail("empty bbox");
    if (!(pixelSizeMicrons_ > 0)) fail("pixel size must be > 0");
    std::set<std::string> names;
    for (std::size_t i = 0; i < amplifiers_.size(); ++i) {
        amplifiers_[i].validate();
        if (!bbox_.contains(amplifiers_[i].bbox)) fail("amplifier " + amplifiers_[i].name + " lies outside the bbox");
        if (!names.insert(amplifiers_[i].name).second) fail("duplicate amplifier name " + amplifiers_[i].name);
        for (std::size_t j = 0; j < i; ++j)
            if (amplifiers_[i].bbox.overlaps(amplifiers_[j].bbox))
                fail("amplifiers " + amplifiers_[i].name + " and " + amplifiers_[j].name + " overlap");
    }
}

const Amplifier& Detector::amplifier(const std::string& name) const {
    for (const Amplifier& a : amplifiers_)
        if (a.name == name) return a;
    throw NotFoundError("detector " + name_ + " has no amplifier " + name);
}

int Detector::amplifierIndexAt(Point2I pixel) const {
    for (std::size_t i = 0; i < amplifiers_.size(); ++i)
        if (amplifiers_[i].bbox.contains(pixel)) return int(i);
    return -1;
}

Point2D Detector::pixelToFocalPlane(Point2D p) const {
    const double scale = pixelSizeMicrons_ * 1e-3;
    const double dx = (p.x - 0.5 * (bbox_.minX() + bbox_.maxX())) * scale;
    const double dy = (p.y - 0.5 * (bbox_.minY() + bbox_.maxY())) * scale;
    return {center_.x + cosYaw_ * dx - sinYaw_ * dy, center_.y + sinYaw_ * dx + cosYaw_ * dy};
}

Point2D Detector::focalPlaneToPixel(Point2D mm) const {
    const double scale = pixelSizeMicrons_ * 1e-3;
    const double ex = mm.x - center_.x, ey = mm.y - center_.y;
    const double dx = cosYaw_ * ex + sinYaw_ * ey, dy = -sinYaw_ * ex + cosYaw_ * ey;
    return {dx / scale + 0.5 * (bbox_.minX() + bbox_.maxX()), dy / scale + 0.5 * (bbox_.minY() + bbox_.maxY())};
}

std::vector<Point2D> Detector::focalPlaneCorners() const {
    const Box2D b(bbox_);
    return {pixelToFocalPlane({b.minX(), b.minY()}), pixelToFocalPlane({b.maxX(), b.minY()}),
            pixelToFocalPlane({b.maxX(), b.maxY()}), pixelToFocalPlane({b.minX(), b.maxY()})};
}

// ---------------------------------------------------------------------------------------------
// Camera

Camera::Camera(std::string name, std::vector<std::shared_ptr<const Detector>> detectors, double plateScaleArcsecPerMm,
               double radialDistortionPerDeg2)
    : name_(std::move(name)),
      detectors_(std::move(detectors)),
      plateScale_(plateScaleArcsecPerMm),
      distortion_(radialDistortionPerDeg2) {
    if (!(plateScale_ > 0)) throw ConfigError("camera " + name_ + ": plate scale must be > 0");
    if (!(std::fabs(distortion_) <= 1))
        throw ConfigError("camera " + name_ + ": radial distortion must be in [-1, 1] per deg^2");
    for (std::size_t i = 0; i < detectors_.size(); ++i) {
        if (!detectors_[i]) throw ConfigError("camera " + name_ + ": null detector");
        if (!byId_.emplace(detectors_[i]->id(), i).second)
            throw ConfigError("camera " + name_ + ": duplicate detector id " + std::to_string(detectors_[i]->id()));
        if (!byName_.emplace(detectors_[i]->name(), i).second)
            throw ConfigError("camera " + name_ + ": duplicate detector name " + detectors_[i]->name());
    }
}

const Detector& Camera::detector(int id) const { return *detectorPtr(id); }

std::shared_ptr<const Detector> Camera::detectorPtr(int id) const {
    auto it = byId_.find(id);
    if (it == byId_.end()) throw NotFoundError("camera " + name_ + " has no detector " + std::to_string(id));
    return detectors_[it->second];
}

const Detector& Camera::detector(const std::string& name) const {
    auto it = byName_.find(name);
    if (it == byName_.end()) throw NotFoundError("camera " + name_ + " has no detector " + name);
    return *detectors_[it->second];
}

std::shared_ptr<const Camera> Camera::withRadialDistortion(double radialDistortionPerDeg2) const {
    return std::make_shared<const Camera>(name_, detectors_, plateScale_, radialDistortionPerDeg2);
}

Point2D Camera::focalPlaneToDistortedField(Point2D mm) const {
    const Point2D phi = focalPlaneToField(mm);
    const double rDeg = std::hypot(phi.x, phi.y) / 3600.0;
    const double f = 1 + distortion_ * rDeg * rDeg;
    return {phi.x * f, phi.y * f};
}

std::shared_ptr<const Wcs> Camera::distortedWcs(const std::shared_ptr<const Wcs>& pointing,
                                                const Detector& detector) const {
    if (!pointing) throw InvalidInputError("camera " + name_ + ": no pointing WCS to distort");
    if (distortion_ == 0.0 || pointing->hasSip()) return pointing;
    const Point2D axis = detector.focalPlaneToPixel({0.0, 0.0});
    Point2D crpix = pointing->crpix();
    SpherePoint crval = pointing->crval();
    if (std::hypot(crpix.x - axis.x, crpix.y - axis.y) > 1e-6) {  // re-centre the tangent point on the axis
        crval = pointing->pixelToSky(axis);
        crpix = axis;
    }
    // theta = CD u (1 + k |CD u|^2) with |CD u|^2 = a^2 |u|^2 for a conformal CD: SIP f(u) = k a^2 |u|^2 u.
    const Eigen::Matrix2d& cd = pointing->cd();
    const double kappa = distortion_ * std::fabs(cd(0, 0) * cd(1, 1) - cd(0, 1) * cd(1, 0));
    const Wcs forward(crpix, crval, cd, SipPolynomials::radialCubic(kappa));
    return forward.withInverseSip(detector.bbox(), 5);
}

int Camera::detectorIdAt(Point2D mm) const {
    for (const auto& d : detectors_) {
        const Point2D p = d->focalPlaneToPixel(mm);
        if (Box2D(d->bbox()).contains(p)) return d->id();
    }
    return -1;
}

// ---------------------------------------------------------------------------------------------
// LSST-like factory

void CameraConfig::validate() const {
    auto fail = [](const std::string& what) { throw ConfigError("CameraConfig: " + what); };
    if (name.empty()) fail("name must not be empty");
    if (ampsX < 1 || ampsY < 1) fail("ampsX and ampsY must be >= 1");
    if (detectorWidth < 1 || detectorHeight < 1) fail("detector dimensions must be >= 1");
    if (detectorWidth % ampsX != 0) fail("detectorWidth must be divisible by ampsX");
    if (detectorHeight % ampsY != 0) fail("detectorHeight must be divisible by ampsY");
    if (prescan < 0 || serialOverscan < 0 || parallelOverscan < 0) fail("prescan/overscan sizes must be >= 0");
    if (!(pixelSizeMicrons > 0)) fail("pixelSizeMicrons must be > 0");
    if (!(plateScaleArcsecPerMm > 0)) fail("plateScaleArcsecPerMm must be > 0");
    if (detectorsX < 1 || detectorsY < 1) fail("detectorsX and detectorsY must be >= 1");
    if (nDetectors < 0 || nDetectors > detectorsX * detectorsY) fail("nDetectors must be in [0, detectorsX*detectorsY]");
    if (!(gapMm >= 0)) fail("gapMm must be >= 0");
    if (!(gain > 0)) fail("gain must be > 0");
    if (!(gainScatter >= 0 && gainScatter < 1)) fail("gainScatter must be in [0, 1)");
    if (!(readNoise >= 0)) fail("readNoise must be >= 0");
    if (!(readNoiseScatter >= 0 && readNoiseScatter < 1)) fail("readNoiseScatter must be in [0, 1)");
    if (!(saturation > 0)) fail("saturation must be > 0");
}

namespace {

std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/// A uniform deviate in [-1, 1) that depends only on its arguments.
double uniformPm1(std::uint64_t seed, int detector, int amp, int channel) {
    std::uint64_t h = splitmix64(seed);
    h = splitmix64(h ^ std::uint64_t(std::uint32_t(detector)));
    h = splitmix64(h ^ (std::uint64_t(std::uint32_t(amp)) << 8) ^ std::uint64_t(channel));
    return double(h >> 11) * 0x1.0p-53 * 2.0 - 1.0;
}

/// prefix + row + col ("C01"), or prefix + row + "_" + col when an index exceeds one digit.
std::string gridName(const std::string& prefix, int row, int col) {
    std::ostringstream os;
    os << prefix << row;
    if (row >= 10 || col >= 10) os << '_';
    os << col;
    return os.str();
}

}  // namespace

std::shared_ptr<const Camera> makeLsstLikeCamera(const CameraConfig& config) {
    config.validate();
    const int ampW = config.detectorWidth / config.ampsX, ampH = config.detectorHeight / config.ampsY;
    const int rawW = config.prescan + ampW + config.serialOverscan, rawH = ampH + config.parallelOverscan;
    const double wMm = config.detectorWidth * config.pixelSizeMicrons * 1e-3;
    const double hMm = config.detectorHeight * config.pixelSizeMicrons * 1e-3;
    const double pitchX = wMm + config.gapMm, pitchY = hMm + config.gapMm;
    const int nDet = config.nDetectors > 0 ? config.nDetectors : config.detectorsX * config.detectorsY;

    std::vector<std::shared_ptr<const Detector>> detectors;
    for (int k = 0; k < nDet; ++k) {
        const int dx = k % config.detectorsX, dy = k / config.detectorsX;
        const int id = config.firstDetectorId + k;
        std::vector<Amplifier> amps;
        for (int iy = 0; iy < config.ampsY; ++iy) {
            for (int ix = 0; ix < config.ampsX; ++ix) {
                Amplifier a;
                a.name = gridName("C", iy, ix);
                a.bbox = Box2I({ix * ampW, iy * ampH}, ampW, ampH);
                a.rawBBox = Box2I({0, 0}, rawW, rawH);
                a.rawDataBBox = Box2I({config.prescan, 0}, ampW, ampH);
                a.rawPrescanBBox = Box2I({0, 0}, config.prescan, ampH);
                a.rawSerialOverscanBBox = Box2I({config.prescan + ampW, 0}, config.serialOverscan, ampH);
                a.rawParallelOverscanBBox = Box2I({config.prescan, ampH}, ampW, config.parallelOverscan);
                const bool upper = config.ampsY > 1 && 2 * iy >= config.ampsY;
                a.readoutCorner = upper ? ReadoutCorner::UR : ReadoutCorner::LL;
                const int ampIndex = iy * config.ampsX + ix;
                a.gain = config.gain * (1.0 + config.gainScatter * uniformPm1(config.seed, id, ampIndex, 0));
                a.readNoise =
                    config.readNoise * (1.0 + config.readNoiseScatter * uniformPm1(config.seed, id, ampIndex, 1));
                a.saturation = config.saturation;
                amps.push_back(std::move(a));
            }
        }
        const Point2D center{(dx - 0.5 * (config.detectorsX - 1)) * pitchX, (dy - 0.5 * (config.detectorsY - 1)) * pitchY};
        detectors.push_back(std::make_shared<const Detector>(
            id, gridName(config.raftName + "_S", dy, dx), Box2I({0, 0}, config.detectorWidth, config.detectorHeight),
            config.pixelSizeMicrons, center, 0.0, std::move(amps)));
    }
    return std::make_shared<const Camera>(config.name, std::move(detectors), config.plateScaleArcsecPerMm);
}

}  // namespace drp
