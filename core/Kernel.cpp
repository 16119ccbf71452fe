#include "core/Kernel.h"

#include <cmath>
#include <numeric>
#include <string>

#include "core/Error.h"

namespace drp {

namespace {

void checkCentre(int width, int height, Point2I c) {
    if (c.x < 0 || c.y < 0 || c.x >= width || c.y >= height)
        throw LogicError("Kernel centre (" + std::to_string(c.x) + "," + std::to_string(c.y) +
                         ") is outside the " + std::to_string(width) + "x" + std::to_string(height) + " kernel");
}

void checkFinite(const std::vector<double>& v, const char* what) {
    for (double x : v)
        if (!std::isfinite(x)) throw LogicError(std::string("Kernel: non-finite value in ") + what);
}

std::vector<double> gaussianVector(double sigma, int halfWidth) {
    if (!(sigma > 0) || !std::isfinite(sigma)) throw LogicError("Kernel::gaussian: sigma must be finite and > 0");
    if (halfWidth < 0) halfWidth = int(std::ceil(4.0 * sigma));
    std::vector<double> v(std::size_t(2 * halfWidth + 1));
    double sum = 0;
    for (int k = -halfWidth; k <= halfWidth; ++k) {
        double val = std::exp(-0.5 * double(k) * double(k) / (sigma * sigma));
        v[std::size_t(k + halfWidth)] = val;
        sum += val;
    }
    for (double& x : v) x /= sum;
    return v;
}

}  // namespace

Kernel::Kernel(const Image<double>& image)
    : Kernel(image, Point2I{(image.width() - 1) / 2, (image.height() - 1) / 2}) {}

Kernel::Kernel(const Image<double>& image, Point2I centre)
    : width_(image.width()), height_(image.height()), centre_(centre) {
    if (image.empty()) throw LogicError("Kernel: empty kernel image");
    checkCentre(width_, height_, centre_);
    values_.resize(std::size_t(width_) * height_);
    for (int j = 0; j < height_; ++j)
        for (int i = 0; i < width_; ++i) values_[std::size_t(j) * width_ + i] = image(i, j);
    checkFinite(values_, "kernel image");
}

Kernel Kernel::separable(std::vector<double> x, std::vector<double> y) {
    Point2I c{(int(x.size()) - 1) / 2, (int(y.size()) - 1) / 2};
    return separable(std::move(x), std::move(y), c);
}

Kernel Kernel::separable(std::vector<double> x, std::vector<double> y, Point2I centre) {
    if (x.empty() || y.empty()) throw LogicError("Kernel::separable: empty vector");
    checkFinite(x, "x vector");
    checkFinite(y, "y vector");
    Kernel k;
    k.width_ = int(x.size());
    k.height_ = int(y.size());
    checkCentre(k.width_, k.height_, centre);
    k.centre_ = centre;
    k.separable_ = true;
    k.x_ = std::move(x);
    k.y_ = std::move(y);
    return k;
}

Kernel Kernel::gaussian(double sigmaX, double sigmaY, int halfWidthX, int halfWidthY) {
    return separable(gaussianVector(sigmaX, halfWidthX), gaussianVector(sigmaY, halfWidthY));
}

Image<double> Kernel::image() const {
    Image<double> img(Box2I({-centre_.x, -centre_.y}, width_, height_));
    for (int j = 0; j < height_; ++j)
        for (int i = 0; i < width_; ++i) img(i, j) = (*this)(i, j);
    return img;
}

double Kernel::sum() const {
    if (separable_)
        return std::accumulate(x_.begin(), x_.end(), 0.0) * std::accumulate(y_.begin(), y_.end(), 0.0);
    return std::accumulate(values_.begin(), values_.end(), 0.0);
}

Kernel Kernel::normalized() const {
    if (empty()) throw LogicError("Kernel::normalized: empty kernel");
    Kernel k = *this;
    if (separable_) {
        double sx = std::accumulate(x_.begin(), x_.end(), 0.0);
        double sy = std::accumulate(y_.begin(), y_.end(), 0.0);
        if (sx == 0 || sy == 0 || !std::isfinite(sx) || !std::isfinite(sy))
            throw InvalidInputError("Kernel::normalized: a separable kernel vector sums to zero");
        for (double& v : k.x_) v /= sx;
        for (double& v : k.y_) v /= sy;
    } else {
        double s = sum();
        if (s == 0 || !std::isfinite(s)) throw InvalidInputError("Kernel::normalized: the kernel sums to zero");
        for (double& v : k.values_) v /= s;
    }
    return k;
}

Kernel Kernel::squared() const {
    Kernel k = *this;
    for (double& v : k.values_) v *= v;
    for (double& v : k.x_) v *= v;
    for (double& v : k.y_) v *= v;
    return k;
}

Kernel Kernel::withCentre(Point2I centre) const {
    checkCentre(width_, height_, centre);
    Kernel k = *this;
    k.centre_ = centre;
    return k;
}

Kernel Kernel::toGeneral() const {
    if (!separable_) return *this;
    return Kernel(image(), centre_);
}

}  // namespace drp
