// Psf: the point-spread function of an exposure, as a pixel image at any position.
//
// A non-virtual public interface (checks, normalisation, caching, parent-frame placement) over private
// virtual doCompute... hooks, as in afw's detection/Psf.h. Concrete PSFs are immutable after
// construction; share them as std::shared_ptr<const Psf>.
//
// Persistence: every PSF type converts to a PsfRecord (a type name plus named numeric arrays) and is
// rebuilt from one through a factory registry keyed by the type name, so io can write and read any
// PSF type without knowing it. A new type (e.g. a PSFEx-like spatially varying PSF) calls
// Psf::registerType once (e.g. from a function the driver calls at start-up).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/Box.h"
#include "core/Image.h"

namespace drp {

/// Second moments of a PSF in pixels^2 (unweighted, about the centroid).
struct PsfShape {
    double ixx = 0.0;
    double iyy = 0.0;
    double ixy = 0.0;
    /// (ixx iyy - ixy^2)^(1/4): the sigma of a round Gaussian of the same area.
    double determinantRadius() const;
    /// sqrt((ixx + iyy) / 2).
    double traceRadius() const;
};

/// A PSF in persistable form: a type name and an ordered list of named arrays of doubles.
struct PsfRecord {
    std::string typeName;
    std::vector<std::pair<std::string, std::vector<double>>> arrays;

    /// Append or replace the array `name`.
    void set(const std::string& name, std::vector<double> values);
    bool has(const std::string& name) const;
    /// The array `name`; throws NotFoundError if absent.
    const std::vector<double>& get(const std::string& name) const;
    /// The single value of a one-element array; throws NotFoundError / InvalidInputError.
    double scalar(const std::string& name) const;

    /// Exact equality (NaN equals NaN bit for bit).
    friend bool operator==(const PsfRecord& a, const PsfRecord& b);
};

class Psf {
public:
    using Factory = std::function<std::shared_ptr<const Psf>(const PsfRecord&)>;

    virtual ~Psf();
    Psf(const Psf&) = delete;
    Psf& operator=(const Psf&) = delete;

    /// The PSF centred on the middle pixel of an odd-sized image whose xy0 is (-w/2, -h/2), so pixel (0,0)
    /// of the parent frame is the centre. Sums to 1 (checked: NumericalError otherwise). `position` is
    /// where on the exposure (parent pixel frame) the PSF is evaluated (for spatially varying PSFs).
    Image<double> computeKernelImage(Point2D position = {}) const;
    /// The PSF as the image of a point source at `position` (sub-pixel), in the parent frame: the
    /// returned image's xy0 is chosen so that its pixels line up with the exposure's pixels and its
    /// centroid is at `position`. Sums to 1.
    Image<double> computeImage(Point2D position) const;
    /// Unweighted second moments of the PSF at `position`.
    PsfShape computeShape(Point2D position = {}) const;
    /// The determinant radius of computeShape (pixels).
    double computeSigma(Point2D position = {}) const { return computeShape(position).determinantRadius(); }
    /// The box of computeKernelImage (centred on 0).
    Box2I kernelBBox(Point2D position = {}) const;

    /// The registered type name, e.g. "GaussianPsf".
    std::string typeName() const { return doTypeName(); }
    /// The persistable form (its typeName is typeName()).
    PsfRecord toRecord() const;
    /// Rebuild a PSF of any registered type. Throws NotFoundError for an unregistered type name and
    /// InvalidInputError for a record the type rejects.
    static std::shared_ptr<const Psf> fromRecord(const PsfRecord& record);
    /// Register a factory for `typeName` (replacing any previous one). Thread-safe.
    static void registerType(const std::string& typeName, Factory factory);
    static bool isRegistered(const std::string& typeName);

    /// Same type and same persisted parameters.
    bool equals(const Psf& other) const { return toRecord() == other.toRecord(); }

protected:
    Psf() = default;
    /// The PSF at sub-pixel `position`; the default shifts the kernel image by Fourier (band-limited)
    /// interpolation, which conserves the sum and moves the centroid by exactly the sub-pixel offset
    /// (protected so an override can fall back on it).
    virtual Image<double> doComputeImage(Point2D position) const;

private:
    /// An odd-sized kernel centred on its middle pixel, summing to 1 (xy0 is set by the caller).
    virtual Image<double> doComputeKernelImage(Point2D position) const = 0;
    /// Default: moments of the kernel image.
    virtual PsfShape doComputeShape(Point2D position) const;
    virtual std::string doTypeName() const = 0;
    /// The arrays of the record (typeName is filled in by toRecord()).
    virtual PsfRecord doToRecord() const = 0;

    // Single-entry cache of the last kernel image (PSFs are shared between threads: guarded).
    mutable std::mutex cacheMutex_;
    mutable std::optional<Point2D> cachedPosition_;
    mutable Image<double> cachedKernel_;
};

/// An elliptical Gaussian sampled at pixel centres. The ellipticity is the distortion
/// (e1, e2) = ((a^2 - b^2)/(a^2 + b^2)) (cos 2 theta, sin 2 theta) at fixed determinant radius sigma.
class GaussianPsf final : public Psf {
public:
    /// @param sigma determinant radius in pixels (> 0)
    /// @param kernelSize odd width = height of the kernel image; 0 chooses 2*ceil(5 sigma_max)+1
    /// @param e1, e2 distortion components, e1^2 + e2^2 < 1
    explicit GaussianPsf(double sigma, int kernelSize = 0, double e1 = 0.0, double e2 = 0.0);
    static std::shared_ptr<const GaussianPsf> make(double sigma, int kernelSize = 0, double e1 = 0.0,
                                                   double e2 = 0.0) {
        return std::make_shared<const GaussianPsf>(sigma, kernelSize, e1, e2);
    }

    double sigma() const { return sigma_; }
    int kernelSize() const { return kernelSize_; }
    double e1() const { return e1_; }
    double e2() const { return e2_; }
    static constexpr const char* kTypeName = "GaussianPsf";

private:
    Image<double> doComputeKernelImage(Point2D position) const override;
    Image<double> doComputeImage(Point2D position) const override;
    PsfShape doComputeShape(Point2D position) const override;
    std::string doTypeName() const override { return kTypeName; }
    PsfRecord doToRecord() const override;
    /// Gaussian sampled on a size x size grid whose middle pixel is offset by (dx, dy) from the centre.
    Image<double> render(double dx, double dy) const;

    double sigma_;
    int kernelSize_;
    double e1_, e2_;
    double ixx_, iyy_, ixy_;
};

/// A fixed (spatially constant) pixel PSF, normalised to sum 1 at construction.
class ImagePsf final : public Psf {
public:
    /// Throws InvalidInputError unless `image` has odd dimensions, finite pixels and a positive sum.
    /// With `normalise` false the image must already sum to 1 (within 1e-9) and is kept bit for bit
    /// (used when reading a persisted PSF, so a round trip is exact).
    explicit ImagePsf(const Image<double>& image, bool normalise = true);
    static std::shared_ptr<const ImagePsf> make(const Image<double>& image, bool normalise = true) {
        return std::make_shared<const ImagePsf>(image, normalise);
    }
    static constexpr const char* kTypeName = "ImagePsf";

private:
    Image<double> doComputeKernelImage(Point2D position) const override;
    std::string doTypeName() const override { return kTypeName; }
    PsfRecord doToRecord() const override;

    Image<double> image_;
};

}  // namespace drp
