// The engine's exception hierarchy. Every error that crosses a boundary carries the file and the
// data ID it concerns, so an operator can tell which input of a campaign went wrong.
#pragma once

#include <stdexcept>
#include <string>

namespace drp {

/// Base of every exception the engine throws on purpose.
class Error : public std::runtime_error {
public:
    /// @param message what went wrong; @param file the file concerned (may be empty);
    /// @param dataId the data ID concerned, e.g. "visit=12 detector=3" (may be empty).
    explicit Error(const std::string& message, std::string file = {}, std::string dataId = {});

    const std::string& message() const noexcept { return message_; }
    const std::string& file() const noexcept { return file_; }
    const std::string& dataId() const noexcept { return dataId_; }

    /// A short name of the error family ("IoError", ...), used in failure summaries.
    virtual const char* kind() const noexcept { return "Error"; }

private:
    static std::string compose(const std::string& message, const std::string& file, const std::string& dataId);
    std::string message_;
    std::string file_;
    std::string dataId_;
};

#define DRP_DECLARE_ERROR(Name, Base)                                                   \
    class Name : public Base {                                                          \
    public:                                                                             \
        using Base::Base;                                                               \
        const char* kind() const noexcept override { return #Name; }                    \
    };

/// A configuration value is missing, out of bounds or inconsistent.
DRP_DECLARE_ERROR(ConfigError, Error)
/// A file could not be read or written (I/O failure, wrong format, truncated file...).
DRP_DECLARE_ERROR(IoError, Error)
/// A FITS file problem reported by CFITSIO (status code in the message).
DRP_DECLARE_ERROR(FitsError, IoError)
/// An HDF5 file problem reported by the HDF5 library.
DRP_DECLARE_ERROR(Hdf5Error, IoError)
/// A requested item (dataset, HDU, column, plane, key) does not exist.
DRP_DECLARE_ERROR(NotFoundError, Error)
/// Input data is present but unusable (NaN image, empty field, wrong WCS...).
DRP_DECLARE_ERROR(InvalidInputError, Error)
/// A numerical method failed (singular matrix, no convergence...).
DRP_DECLARE_ERROR(NumericalError, Error)
/// A caller broke a documented precondition (bad index, mismatched sizes...).
DRP_DECLARE_ERROR(LogicError, Error)
/// A dataset with the same type, run and data ID already exists.
DRP_DECLARE_ERROR(ConflictError, Error)

#undef DRP_DECLARE_ERROR

}  // namespace drp
