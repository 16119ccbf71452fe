// Kernel: an immutable convolution kernel, either a general 2-d array of weights or a separable one
// (outer product of an x vector and a y vector), with a centre pixel.
//
// Conventions:
//  * Kernel pixel (i, j), 0 <= i < width, 0 <= j < height, has value K(i, j); for a separable kernel
//    K(i, j) = xVector()[i] * yVector()[j].
//  * The centre (cx, cy) is a kernel pixel; the default is ((width - 1) / 2, (height - 1) / 2) in
//    integer arithmetic, i.e. the middle pixel for odd sizes and the pixel just below/left of the
//    middle for even sizes.
//  * Convolution (core/Convolution.h) is true convolution:
//        out(x, y) = sum_{i,j} K(i, j) * in(x - (i - cx), y - (j - cy)).
//    so a kernel with a single 1 at (cx + 1, cy) shifts the image by +1 pixel in x.
#pragma once

#include <memory>
#include <vector>

#include "core/Box.h"
#include "core/Image.h"

namespace drp {

class Kernel {
public:
    /// An empty kernel (width = height = 0); convolving with it throws LogicError.
    Kernel() = default;

    /// A general kernel with the pixels of `image` (its xy0 is ignored) and the default centre.
    /// Throws LogicError if the image is empty or has a non-finite pixel.
    explicit Kernel(const Image<double>& image);
    /// A general kernel with an explicit centre (local kernel indices). Throws LogicError if the centre
    /// is outside the kernel.
    Kernel(const Image<double>& image, Point2I centre);

    /// A separable kernel K(i, j) = x[i] * y[j] with the default centre.
    static Kernel separable(std::vector<double> x, std::vector<double> y);
    /// A separable kernel with an explicit centre.
    static Kernel separable(std::vector<double> x, std::vector<double> y, Point2I centre);
    /// A separable, normalised (sum 1) Gaussian of standard deviations sigmaX, sigmaY (pixels),
    /// sampled at pixel centres, width = 2 * halfWidthX + 1, height = 2 * halfWidthY + 1, centred.
    /// halfWidth < 0 means ceil(4 sigma). Throws LogicError for sigma <= 0.
    static Kernel gaussian(double sigmaX, double sigmaY, int halfWidthX = -1, int halfWidthY = -1);
    /// Circular Gaussian: gaussian(sigma, sigma, halfWidth, halfWidth).
    static Kernel gaussian(double sigma, int halfWidth = -1) { return gaussian(sigma, sigma, halfWidth, halfWidth); }

    int width() const { return width_; }
    int height() const { return height_; }
    bool empty() const { return width_ == 0; }
    Point2I centre() const { return centre_; }
    bool isSeparable() const { return separable_; }
    /// x and y vectors of a separable kernel (empty for a general kernel).
    const std::vector<double>& xVector() const { return x_; }
    const std::vector<double>& yVector() const { return y_; }

    /// K(i, j), local kernel indices; no bounds check.
    double operator()(int i, int j) const {
        return separable_ ? x_[std::size_t(i)] * y_[std::size_t(j)] : values_[std::size_t(j) * width_ + i];
    }
    /// The kernel as a width x height image (xy0 = -centre, so parent coordinates are offsets from the
    /// centre).
    Image<double> image() const;
    /// Sum of all kernel values.
    double sum() const;

    /// A copy scaled to sum to 1 (separable kernels: each vector scaled to sum to 1, which requires
    /// both to have non-zero sums). Throws InvalidInputError if the sum is zero or not finite.
    Kernel normalized() const;
    /// A copy with every value squared (what a variance is convolved with); separable stays separable.
    Kernel squared() const;
    /// A copy with another centre (throws LogicError outside the kernel).
    Kernel withCentre(Point2I centre) const;
    /// The equivalent general (non-separable) kernel.
    Kernel toGeneral() const;

    /// Offsets covered: output(x, y) reads input x - (i - cx) for i in [0, width), i.e. offsets
    /// [-(width - 1 - cx), cx] in x, similarly in y.
    int maxOffsetLeft() const { return width_ - 1 - centre_.x; }   ///< in pixels below x read
    int maxOffsetRight() const { return centre_.x; }               ///< in pixels above x read
    int maxOffsetDown() const { return height_ - 1 - centre_.y; }
    int maxOffsetUp() const { return centre_.y; }

    friend bool operator==(const Kernel&, const Kernel&) = default;

private:
    int width_ = 0;
    int height_ = 0;
    Point2I centre_{};
    bool separable_ = false;
    std::vector<double> values_;  ///< general: row-major, height rows of width
    std::vector<double> x_, y_;   ///< separable
};

}  // namespace drp
