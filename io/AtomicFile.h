// AtomicFile: write a file under a temporary name in the destination's directory, then publish it
// in one atomic step, so readers (and a job killed half-way) never see a partial file.
//
//   AtomicFile out(dest);
//   writeSomething(out.tempPath());   // any writer: CFITSIO, HDF5, std::ofstream...
//   out.commit();                     // fsync + rename over dest + fsync of the directory
//
// If commit() is never reached (exception, early return) the destructor removes the temp file.
// Temp names look like ".<filename>.tmp.<pid>.<counter>.<nonce>" (hidden, unique per process and
// host), so directory scans can recognise and skip them with isTempName().
#pragma once

#include <filesystem>

namespace drp {

class AtomicFile {
public:
    /// Reserves a temp name beside `destination`; creates nothing on disk. The destination's
    /// directory must exist when the writer runs (commit() does not create it).
    explicit AtomicFile(std::filesystem::path destination);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;
    AtomicFile(AtomicFile&& other) noexcept;
    AtomicFile& operator=(AtomicFile&& other) noexcept;

    const std::filesystem::path& destination() const { return destination_; }
    const std::filesystem::path& tempPath() const { return temp_; }
    bool committed() const { return committed_; }

    /// fsync the temp file, rename it over the destination (replacing any existing file), fsync
    /// the directory. Throws IoError (naming the file) if the temp file is missing or a step fails;
    /// the temp file is then still removed by the destructor.
    void commit();
    /// Like commit() but never replaces: throws ConflictError if the destination exists (checked
    /// atomically with link(2), or renameat2(RENAME_NOREPLACE) where hard links are unsupported).
    void commitNoReplace();
    /// Remove the temp file now (no-op if it does not exist or was committed).
    void discard() noexcept;

    /// True for names produced by AtomicFile (".<name>.tmp.<pid>.<n>.<nonce>").
    static bool isTempName(const std::filesystem::path& path);

private:
    void syncTemp();
    void syncDirectory();
    std::filesystem::path destination_;
    std::filesystem::path temp_;
    bool committed_ = false;
};

}  // namespace drp
