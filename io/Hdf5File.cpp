#include "io/Hdf5File.h"

#include <hdf5.h>

#include <mutex>
#include <system_error>
#include <type_traits>

#include "core/Error.h"
#include "core/MpiNative.h"

static_assert(std::is_same_v<hid_t, std::int64_t>, "drp::Hdf5Id assumes hid_t is int64_t (HDF5 >= 1.10)");

namespace drp {

void Hdf5Id::reset() noexcept {
    if (id_ >= 0) {
        silenceHdf5Errors();
        if (H5Iis_valid(id_) > 0) H5Idec_ref(id_);
        id_ = -1;
    }
}

void silenceHdf5Errors() {
    static std::once_flag once;
    std::call_once(once, [] {
        H5open();
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    });
}

namespace {

herr_t walkInnermost(unsigned n, const H5E_error2_t* err, void* clientData) {
    auto* out = static_cast<std::string*>(clientData);
    if (n == 0 && err && err->desc) {
        *out = err->desc;
        if (err->func_name) *out += std::string(" (in ") + err->func_name + ")";
    }
    return 0;
}

}  // namespace

std::string hdf5ErrorStackMessage() {
    silenceHdf5Errors();
    std::string msg;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walkInnermost, &msg);
    H5Eclear2(H5E_DEFAULT);
    return msg;
}

void throwHdf5Error(const std::string& what, const std::filesystem::path& file, const std::string& object) {
    std::string detail = hdf5ErrorStackMessage();
    std::string msg = what;
    if (!object.empty()) msg += " [object '" + object + "']";
    if (!detail.empty()) msg += ": " + detail;
    throw Hdf5Error(msg, file.string());
}

std::int64_t checkHdf5(std::int64_t id, const std::string& what, const std::filesystem::path& file,
                       const std::string& object) {
    if (id < 0) throwHdf5Error(what, file, object);
    return id;
}

namespace {

void requireOpenable(const std::filesystem::path& path, Hdf5File::Mode mode) {
    if (mode == Hdf5File::Mode::ReadOnly || mode == Hdf5File::Mode::ReadWrite) {
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) throw Hdf5Error("HDF5 file does not exist", path.string());
        if (std::filesystem::is_directory(path, ec))
            throw Hdf5Error("HDF5 path is a directory, not a file", path.string());
        if (!Hdf5File::isHdf5(path)) throw Hdf5Error("not an HDF5 file (bad or truncated signature)", path.string());
    }
}

hid_t openOrCreate(const std::filesystem::path& path, Hdf5File::Mode mode, hid_t fapl) {
    switch (mode) {
        case Hdf5File::Mode::ReadOnly: return H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
        case Hdf5File::Mode::ReadWrite: return H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl);
        case Hdf5File::Mode::Create: return H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
        case Hdf5File::Mode::CreateExclusive: return H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    }
    return -1;
}

const char* modeName(Hdf5File::Mode mode) {
    switch (mode) {
        case Hdf5File::Mode::ReadOnly: return "open (read-only)";
        case Hdf5File::Mode::ReadWrite: return "open (read-write)";
        case Hdf5File::Mode::Create: return "create";
        case Hdf5File::Mode::CreateExclusive: return "create (exclusive)";
    }
    return "open";
}

}  // namespace

Hdf5File::Hdf5File(const std::filesystem::path& path, Mode mode) : path_(path) {
    silenceHdf5Errors();
    requireOpenable(path, mode);
    Hdf5Id fapl(checkHdf5(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate(file access)", path));
    // Strong close: closing the file id closes everything still open in it.
    H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
    file_ = Hdf5Id(checkHdf5(openOrCreate(path, mode, fapl.get()), std::string("cannot ") + modeName(mode) +
                                                                       " HDF5 file",
                             path));
    writable_ = mode != Mode::ReadOnly;
}

Hdf5File Hdf5File::openParallel(const Communicator& comm, const std::filesystem::path& path, Mode mode) {
    silenceHdf5Errors();
    if (mode == Mode::ReadOnly || mode == Mode::ReadWrite) {
        // Every rank must take the same decision, so rank 0 checks and broadcasts.
        std::string verdict;
        if (comm.rank() == 0) {
            try {
                requireOpenable(path, mode);
            } catch (const Hdf5Error& e) {
                verdict = e.message();
            }
        }
        verdict = comm.broadcast(verdict, 0);
        if (!verdict.empty()) throw Hdf5Error(verdict, path.string());
    }
    Hdf5File f;
    f.path_ = path;
    f.comm_ = comm;
    Hdf5Id fapl(checkHdf5(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate(file access)", path));
    if (H5Pset_fapl_mpio(fapl.get(), nativeComm(comm), MPI_INFO_NULL) < 0)
        throwHdf5Error("H5Pset_fapl_mpio failed", path);
    H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
    hid_t id = openOrCreate(path, mode, fapl.get());
    // A failure on one rank must fail everywhere (else the next collective call would hang).
    std::int64_t failed = comm.allreduceSum(std::int64_t(id < 0 ? 1 : 0));
    if (failed > 0) {
        if (id >= 0) H5Fclose(id);
        throwHdf5Error(std::string("cannot ") + modeName(mode) + " HDF5 file in parallel (failed on " +
                           std::to_string(failed) + " of " + std::to_string(comm.size()) + " ranks)",
                       path);
    }
    f.file_ = Hdf5Id(id);
    f.writable_ = mode != Mode::ReadOnly;
    return f;
}

Hdf5File::~Hdf5File() {
    if (file_.valid()) {
        silenceHdf5Errors();
        H5Fclose(file_.release());
        H5Eclear2(H5E_DEFAULT);
    }
}

const Communicator& Hdf5File::communicator() const {
    if (!comm_) throw LogicError("Hdf5File: not opened for parallel I/O", path_.string());
    return *comm_;
}

bool Hdf5File::exists(const std::string& objectPath) const {
    if (!file_.valid()) throw LogicError("Hdf5File: file is closed", path_.string());
    std::string p;
    std::size_t i = 0;
    while (i <= objectPath.size()) {
        std::size_t j = objectPath.find('/', i);
        if (j == std::string::npos) j = objectPath.size();
        if (j > i) {
            p += '/';
            p.append(objectPath, i, j - i);
            htri_t e = H5Lexists(file_.get(), p.c_str(), H5P_DEFAULT);
            if (e < 0) throwHdf5Error("H5Lexists failed", path_, p);
            if (e == 0) return false;
        }
        i = j + 1;
    }
    return true;
}

void Hdf5File::flush() {
    if (!file_.valid()) throw LogicError("Hdf5File: file is closed", path_.string());
    if (H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) < 0) throwHdf5Error("H5Fflush failed", path_);
}

void Hdf5File::close() {
    if (!file_.valid()) return;
    if (H5Fclose(file_.release()) < 0) throwHdf5Error("H5Fclose failed", path_);
}

bool Hdf5File::isHdf5(const std::filesystem::path& path) {
    silenceHdf5Errors();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return false;
    htri_t r = H5Fis_hdf5(path.c_str());
    H5Eclear2(H5E_DEFAULT);
    return r > 0;
}

}  // namespace drp
