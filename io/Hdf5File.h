// RAII wrappers over HDF5 identifiers. This header does not include hdf5.h (the parallel HDF5
// headers pull in mpi.h); an HDF5 id is carried as std::int64_t, which is hid_t in HDF5 >= 1.10
// (checked by a static_assert in Hdf5File.cpp).
//
// Every HDF5 failure becomes drp::Hdf5Error naming the file and the object (group/dataset/attribute)
// plus the innermost message of HDF5's error stack. HDF5's own printing of its error stack is
// switched off the first time any wrapper is used, so nothing reaches stderr.
//
// The HDF5 build used here is not thread-safe: use HDF5 objects from one thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "core/Communicator.h"

namespace drp {

/// An owning HDF5 identifier (file, group, dataset, dataspace, datatype, attribute, property list).
/// Closes it with H5Idec_ref when destroyed. Move-only.
class Hdf5Id {
public:
    Hdf5Id() = default;
    explicit Hdf5Id(std::int64_t id) : id_(id) {}
    ~Hdf5Id() { reset(); }
    Hdf5Id(const Hdf5Id&) = delete;
    Hdf5Id& operator=(const Hdf5Id&) = delete;
    Hdf5Id(Hdf5Id&& o) noexcept : id_(o.id_) { o.id_ = -1; }
    Hdf5Id& operator=(Hdf5Id&& o) noexcept {
        if (this != &o) {
            reset();
            id_ = o.id_;
            o.id_ = -1;
        }
        return *this;
    }
    std::int64_t get() const { return id_; }
    bool valid() const { return id_ >= 0; }
    void reset() noexcept;
    std::int64_t release() {
        std::int64_t id = id_;
        id_ = -1;
        return id;
    }

private:
    std::int64_t id_ = -1;
};

/// Turn off HDF5's automatic error printing (idempotent; every wrapper calls it).
void silenceHdf5Errors();
/// The innermost message on HDF5's current error stack ("" if none); clears the stack.
std::string hdf5ErrorStackMessage();
/// Throw Hdf5Error("<what>: <HDF5 stack message>", file, object-in-message).
[[noreturn]] void throwHdf5Error(const std::string& what, const std::filesystem::path& file,
                                 const std::string& object = {});
/// Returns `id` if >= 0, else throws as throwHdf5Error.
std::int64_t checkHdf5(std::int64_t id, const std::string& what, const std::filesystem::path& file,
                       const std::string& object = {});

/// An open HDF5 file.
class Hdf5File {
public:
    enum class Mode {
        ReadOnly,        ///< must exist
        ReadWrite,       ///< must exist
        Create,          ///< create, truncating an existing file
        CreateExclusive  ///< create; fails if the file exists
    };

    /// Serial open/create. A file that is missing, is not HDF5 or cannot be created throws
    /// Hdf5Error naming the file.
    Hdf5File(const std::filesystem::path& path, Mode mode);
    /// Collective open/create through MPI-IO (H5Pset_fapl_mpio) on `comm`: every rank of `comm`
    /// must call it with the same arguments. A serial communicator uses MPI_COMM_SELF.
    static Hdf5File openParallel(const Communicator& comm, const std::filesystem::path& path, Mode mode);

    Hdf5File(Hdf5File&&) noexcept = default;
    Hdf5File& operator=(Hdf5File&&) noexcept = default;
    ~Hdf5File();

    const std::filesystem::path& path() const { return path_; }
    std::int64_t id() const { return file_.get(); }
    bool isOpen() const { return file_.valid(); }
    bool isParallel() const { return comm_.has_value(); }
    /// The communicator of a parallel file (LogicError for a serial one).
    const Communicator& communicator() const;
    bool writable() const { return writable_; }

    /// True if `path` ("/a/b" or "a/b") names an existing link in the file (every prefix must exist).
    bool exists(const std::string& objectPath) const;
    void flush();
    /// Close now (collective for a parallel file); further use throws. Errors throw Hdf5Error.
    void close();

    /// True if `path` is an HDF5 file (false for missing or non-HDF5 files; never throws).
    static bool isHdf5(const std::filesystem::path& path);

private:
    Hdf5File() = default;
    std::filesystem::path path_;
    Hdf5Id file_;
    std::optional<Communicator> comm_;
    bool writable_ = false;
};

}  // namespace drp
