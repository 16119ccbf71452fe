// Camera geometry: Amplifier (one readout segment), Detector (one CCD), Camera (the focal plane),
// and a factory for LSSTCam-like cameras of any size.
//
// Frames:
//  * assembled detector frame: pixel (0, 0) is the lower-left data pixel of the CCD; Detector::bbox()
//    covers the data pixels only (LSSTCam: 4072 x 4000).
//  * raw amplifier frame: one amplifier's image in readout order, origin (0, 0) at the pixel read first
//    (LSSTCam: 576 x 2048 = 3 prescan + 509 data + 64 serial overscan columns, 2000 data + 48
//    parallel overscan rows). Data pixel (u, v) of the raw frame maps to the assembled pixel at
//    offset (u, v) from the amplifier's readout corner, counted towards the amplifier's interior.
//  * focal plane: millimetres, centred on the optical axis; a detector's centre sits at
//    Detector::focalPlaneCenter() and its +x axis is rotated by yaw() counter-clockwise.
// All objects are immutable after construction; share as std::shared_ptr<const T>.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/Box.h"
#include "core/Image.h"
#include "core/Wcs.h"

namespace drp {

/// The corner of an amplifier's data region (in the assembled frame) nearest its output node.
enum class ReadoutCorner { LL, LR, UL, UR };

/// One amplifier (readout segment) of a detector.
struct Amplifier {
    std::string name;               ///< e.g. "C00"
    Box2I bbox;                     ///< data pixels in the assembled detector frame
    Box2I rawBBox;                  ///< the whole raw amplifier image (raw frame, min (0, 0))
    Box2I rawDataBBox;              ///< data pixels in the raw frame
    Box2I rawPrescanBBox;           ///< serial prescan columns (data rows only) in the raw frame
    Box2I rawSerialOverscanBBox;    ///< serial overscan columns (data rows only) in the raw frame
    Box2I rawParallelOverscanBBox;  ///< parallel overscan rows (data columns only) in the raw frame
    ReadoutCorner readoutCorner = ReadoutCorner::LL;
    double gain = 1.0;              ///< e-/ADU
    double readNoise = 0.0;         ///< e- (rms)
    double saturation = 0.0;        ///< ADU at which the amplifier saturates
    std::string linearityType = "None";   ///< linearity model name (placeholder; "None": linear)
    std::vector<double> linearityCoeffs;  ///< linearity model coefficients (placeholder; empty)

    /// Raw pixels are mirrored in x (y) relative to the assembled frame.
    bool rawFlipX() const { return readoutCorner == ReadoutCorner::LR || readoutCorner == ReadoutCorner::UR; }
    bool rawFlipY() const { return readoutCorner == ReadoutCorner::UL || readoutCorner == ReadoutCorner::UR; }

    /// Raw data pixel -> assembled detector pixel. Throws LogicError outside rawDataBBox.
    Point2I rawToAssembled(Point2I raw) const;
    /// Assembled detector pixel -> raw data pixel. Throws LogicError outside bbox.
    Point2I assembledToRaw(Point2I assembled) const;
    /// Boxes (must lie inside rawDataBBox / bbox respectively).
    Box2I rawToAssembled(const Box2I& raw) const;
    Box2I assembledToRaw(const Box2I& assembled) const;

    /// Throws ConfigError unless the raw boxes lie inside rawBBox without overlapping, the data box
    /// has the size of bbox, gain > 0, readNoise >= 0 and saturation > 0.
    void validate() const;
    friend bool operator==(const Amplifier&, const Amplifier&) = default;
};

/// Copy the data pixels of one raw amplifier image (raw frame; its bbox must contain rawDataBBox)
/// into an assembled detector image (detector frame; must contain amp.bbox), undoing the flips.
template <typename T>
void assembleAmplifier(const Amplifier& amp, const Image<T>& raw, const Image<T>& assembled);
/// The raw amplifier image (bbox rawBBox) whose data pixels are those of `assembled` (inverse of
/// assembleAmplifier); prescan and overscan pixels are set to `fill`.
template <typename T>
Image<T> disassembleAmplifier(const Amplifier& amp, const Image<T>& assembled, T fill = T{});

class Detector {
public:
    /// @param bbox            data pixels of the assembled detector
    /// @param pixelSizeMicrons pixel pitch (square pixels)
    /// @param focalPlaneCenter focal-plane position (mm) of the detector centre (bbox centre)
    /// @param yaw             rotation (radians, counter-clockwise) of the detector +x axis in the focal plane
    /// Throws ConfigError if an amplifier is invalid, lies outside bbox, or two amplifiers overlap or
    /// share a name.
    Detector(int id, std::string name, Box2I bbox, double pixelSizeMicrons, Point2D focalPlaneCenter, double yaw,
             std::vector<Amplifier> amplifiers);

    int id() const { return id_; }
    const std::string& name() const { return name_; }
    Box2I bbox() const { return bbox_; }
    double pixelSizeMicrons() const { return pixelSizeMicrons_; }
    Point2D focalPlaneCenter() const { return center_; }
    double yaw() const { return yaw_; }
    const std::vector<Amplifier>& amplifiers() const { return amplifiers_; }
    /// Throws NotFoundError if there is no such amplifier.
    const Amplifier& amplifier(const std::string& name) const;
    /// Index of the amplifier whose bbox contains the pixel, or -1.
    int amplifierIndexAt(Point2I pixel) const;

    /// Detector pixel (assembled frame, pixel centres at integers) -> focal plane (mm).
    Point2D pixelToFocalPlane(Point2D pixel) const;
    /// Focal plane (mm) -> detector pixel; exact inverse of pixelToFocalPlane.
    Point2D focalPlaneToPixel(Point2D mm) const;
    /// The four outer corners of the pixel area in the focal plane (mm), counter-clockwise from (min, min).
    std::vector<Point2D> focalPlaneCorners() const;

private:
    int id_;
    std::string name_;
    Box2I bbox_;
    double pixelSizeMicrons_;
    Point2D center_;
    double yaw_;
    double cosYaw_, sinYaw_;
    std::vector<Amplifier> amplifiers_;
};

class Camera {
public:
    /// Throws ConfigError for duplicate detector ids or names, plate scale <= 0, or |radialDistortionPerDeg2| > 1.
    /// @param radialDistortionPerDeg2 the optics' radial cubic distortion k (1/deg^2): a focal-plane point at
    ///        nominal field angle phi = plateScale * mm is seen at theta = phi * (1 + k |phi|^2), |phi| in degrees
    Camera(std::string name, std::vector<std::shared_ptr<const Detector>> detectors, double plateScaleArcsecPerMm,
           double radialDistortionPerDeg2 = 0.0);

    const std::string& name() const { return name_; }
    double plateScaleArcsecPerMm() const { return plateScale_; }
    double radialDistortionPerDeg2() const { return distortion_; }
    /// The same camera with the optics' radial distortion k (1/deg^2, see the constructor).
    std::shared_ptr<const Camera> withRadialDistortion(double radialDistortionPerDeg2) const;
    std::size_t size() const { return detectors_.size(); }
    const std::vector<std::shared_ptr<const Detector>>& detectors() const { return detectors_; }
    /// Lookups; throw NotFoundError.
    const Detector& detector(int id) const;
    const Detector& detector(const std::string& name) const;
    std::shared_ptr<const Detector> detectorPtr(int id) const;
    bool hasDetector(int id) const { return byId_.count(id) > 0; }
    /// Focal plane (mm) <-> field angle offsets from the boresight (arcsec), linear (no distortion).
    Point2D focalPlaneToField(Point2D mm) const { return {mm.x * plateScale_, mm.y * plateScale_}; }
    Point2D fieldToFocalPlane(Point2D arcsec) const { return {arcsec.x / plateScale_, arcsec.y / plateScale_}; }
    /// Focal plane (mm) -> true field angle (arcsec): focalPlaneToField with the optics' radial distortion.
    Point2D focalPlaneToDistortedField(Point2D mm) const;
    /// Id of the detector whose pixel area contains the focal-plane point, or -1.
    int detectorIdAt(Point2D mm) const;

    /// The WCS of `detector` that this camera model predicts from a pointing: the TAN projection of `pointing`
    /// (a header WCS: pointing, rotation, plate scale, with CRPIX at or near the optical axis) combined with
    /// the optics' radial distortion about the optical axis, as the exact order-3 SIP polynomials
    ///     A = k a^2 (u^3 + u v^2),  B = k a^2 (u^2 v + v^3)   (u, v: pixels from the axis; a^2 = |det CD|)
    /// and an order-5 inverse fitted over the detector. This is how a raw's plain-TAN header becomes a
    /// starting WCS with the right shape, as Rubin builds it from the camera geometry and the boresight.
    /// A pointing whose CRPIX is off the axis is first re-centred there (CRVAL moved along, CD kept).
    /// A pointing that already has SIP terms, or a camera without distortion, returns the pointing unchanged.
    std::shared_ptr<const Wcs> distortedWcs(const std::shared_ptr<const Wcs>& pointing, const Detector& detector) const;

private:
    std::string name_;
    std::vector<std::shared_ptr<const Detector>> detectors_;
    double plateScale_;
    double distortion_;
    std::map<int, std::size_t> byId_;
    std::map<std::string, std::size_t> byName_;
};

/// Configuration of makeLsstLikeCamera. Defaults mirror LSSTCam's science sensors arranged as one raft.
struct CameraConfig {
    std::string name = "LSSTCam-like";  ///< camera name
    int detectorWidth = 4072;           ///< assembled data pixels in x (divisible by ampsX)
    int detectorHeight = 4000;          ///< assembled data pixels in y (divisible by ampsY)
    int ampsX = 8;                      ///< amplifier columns per detector (>= 1)
    int ampsY = 2;                      ///< amplifier rows per detector (>= 1)
    int prescan = 3;                    ///< serial prescan columns per amplifier (>= 0)
    int serialOverscan = 64;            ///< serial overscan columns per amplifier (>= 0)
    int parallelOverscan = 48;          ///< parallel overscan rows per amplifier (>= 0)
    double pixelSizeMicrons = 10.0;     ///< pixel pitch, microns (> 0)
    double plateScaleArcsecPerMm = 20.0;  ///< arcsec/mm (> 0); 20 arcsec/mm x 10 um = 0.2 arcsec/pixel
    int detectorsX = 3;                 ///< detector grid columns (>= 1)
    int detectorsY = 3;                 ///< detector grid rows (>= 1)
    int nDetectors = 0;                 ///< detectors placed, in raster order from the lower left (0: the full grid)
    double gapMm = 1.5;                 ///< gap between neighbouring detectors, mm (>= 0)
    std::string raftName = "R22";       ///< detector names are raftName + "_S" + row + column
    int firstDetectorId = 0;            ///< id of the first detector; ids increase in raster order
    double gain = 1.5;                  ///< mean gain, e-/ADU (> 0)
    double gainScatter = 0.05;          ///< fractional half-width of the uniform per-amp gain spread, [0, 1)
    double readNoise = 6.0;             ///< mean read noise, e- (>= 0)
    double readNoiseScatter = 0.1;      ///< fractional half-width of the per-amp read noise spread, [0, 1)
    double saturation = 100000.0;       ///< saturation level, ADU (> 0)
    std::uint64_t seed = 1;             ///< seed of the deterministic per-amplifier variation

    /// Throws ConfigError for out-of-bounds or inconsistent values.
    void validate() const;
    friend bool operator==(const CameraConfig&, const CameraConfig&) = default;
};

/// An LSSTCam-like camera: a detectorsX x detectorsY grid of identical detectors centred on the optical
/// axis, each read by ampsX x ampsY amplifiers named "C<row><col>". Amplifiers in the lower half of a
/// detector read out from their lower-left corner, those in the upper half from their upper-right
/// corner (so raw images of the upper half are rotated by 180 degrees). Gain and read noise vary per
/// amplifier by a deterministic function of (seed, detector id, amplifier index).
std::shared_ptr<const Camera> makeLsstLikeCamera(const CameraConfig& config = {});

}  // namespace drp
