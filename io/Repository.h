// Repository: the data repository, a directory tree of datasets plus a manifest of every dataset
// written. A dataset is (dataset type, run, data ID); the repository refuses a second one with the
// same three (ConflictError). It does not know file formats: a caller asks for a temp path, writes
// it with any writer, and the repository publishes it:
//
//   Repository repo = Repository::create(root);
//   repo.registerDatasetType({"calexp", StorageClass::Fits,
//                             "{run}/calexp/{band}/{visit}/calexp_{visit}_{detector}.fits",
//                             {Dimension::Band, Dimension::Visit, Dimension::Detector}});
//   repo.put("calexp", "run1", dataId, [&](const std::filesystem::path& tmp) { writeFits(tmp, ...); });
//
// Layout:
//   <root>/drp_repo.json               marker (format and version)
//   <root>/_types/<name>.json          one file per dataset type, published without replacement
//   <root>/_runs/<run>.run             registered runs ('/' in a run name is stored as %2F)
//   <root>/_manifest/<writer>.jsonl    append-only manifests, ONE FILE PER WRITER (see below)
//   <root>/<run>/...                   datasets, placed by their type's path template
//
// Publication of a dataset: the writer fills a hidden temp file in the destination directory
// (AtomicFile); the repository fsyncs it, computes size and XXH3-128 checksum, links it to its
// final name *without replacement* (link(2): atomic across processes and hosts, so two writers of
// the same dataset cannot both win), then appends one manifest line and fsyncs it. A dataset
// exists only once its manifest line does; temp files are never listed.
//
// Concurrency choice: every Repository object appends to its own manifest file
// (_manifest/<host>-<pid>-<nonce>.jsonl, created with O_EXCL), guarded by a mutex for its threads.
// No two processes ever append to the same file, which stays correct on NFS/Lustre/GPFS where
// O_APPEND is not atomic across clients. Readers merge every manifest file, reading only the bytes
// appended since their last look. Each line is JSON with a trailing per-line XXH3-64 "crc" field; a
// line that fails its check (torn by a crash, or corrupted) or that has no final newline is
// ignored (and counted in stats()), never fatal.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/DataId.h"
#include "io/AtomicFile.h"
#include "io/DatasetType.h"

namespace drp {

/// One manifest entry.
struct DatasetRecord {
    std::string datasetType;
    std::string run;
    DataId dataId;              ///< reduced to the dataset type's dimensions
    std::string relativePath;   ///< relative to the repository root
    std::uint64_t size = 0;     ///< bytes
    std::string checksum;       ///< XXH3-128 hex (Checksum::hex)
    std::string producer;       ///< the producing run/job/quantum (free text; defaults to run)
    std::string timestamp;      ///< UTC ISO 8601 with milliseconds, e.g. 2026-11-21T10:12:00.123Z
    friend bool operator==(const DatasetRecord&, const DatasetRecord&) = default;
};

/// Partial query: unset members match everything; dataId matches records having all its values.
struct DatasetQuery {
    std::optional<std::string> datasetType;
    std::optional<std::string> run;
    DataId dataId;
};

enum class VerifyStatus { Ok, Missing, SizeMismatch, ChecksumMismatch };
const char* verifyStatusName(VerifyStatus s);

class Repository {
public:
    /// Create a repository at `root` (directories included), or open it if it already exists.
    /// Safe to call from several processes at once. Throws IoError if it cannot be created.
    static Repository create(const std::filesystem::path& root);
    /// Open an existing repository; NotFoundError if `root` has no repository marker.
    static Repository open(const std::filesystem::path& root);

    Repository(Repository&&) noexcept;
    Repository& operator=(Repository&&) noexcept;
    ~Repository();

    const std::filesystem::path& root() const;

    // ---- dataset types and runs ----
    /// Register a type (validated). Idempotent for an identical definition; ConflictError if a
    /// different definition is registered under the same name.
    void registerDatasetType(const DatasetType& type);
    /// NotFoundError if not registered.
    DatasetType datasetType(const std::string& name) const;
    bool hasDatasetType(const std::string& name) const;
    std::vector<DatasetType> datasetTypes() const;
    /// Record a run (collection) name; idempotent. Runs with datasets are listed even unregistered.
    void registerRun(const std::string& run);
    /// Registered runs and runs that hold datasets, sorted.
    std::vector<std::string> runs() const;

    // ---- writing ----
    /// A dataset being written: write tempPath() with any writer, then commit(). Destroying it
    /// without commit() removes the temp file and records nothing.
    class PendingDataset {
    public:
        PendingDataset(PendingDataset&&) noexcept;
        PendingDataset& operator=(PendingDataset&&) noexcept;
        ~PendingDataset();
        const std::filesystem::path& tempPath() const { return file_.tempPath(); }
        /// Final absolute path.
        const std::filesystem::path& path() const { return file_.destination(); }
        /// Checksum, publish (no replacement) and record in the manifest. Throws IoError if nothing
        /// was written, ConflictError if another writer published the same dataset first.
        DatasetRecord commit();

    private:
        friend class Repository;
        PendingDataset(Repository* repo, DatasetRecord record, std::filesystem::path destination);
        Repository* repo_;
        DatasetRecord record_;
        AtomicFile file_;
    };

    /// Check the type is registered, the run name and data ID are valid, and the dataset is not
    /// already present (ConflictError, also if a file not in the manifest sits at its path); create
    /// the directory; return the temp path to write into.
    PendingDataset prepare(const std::string& datasetType, const std::string& run, const DataId& dataId,
                           const std::string& producer = {});
    /// prepare() + writer(tempPath) + commit(). If the writer throws, nothing is recorded, the temp
    /// file is removed and the exception propagates.
    DatasetRecord put(const std::string& datasetType, const std::string& run, const DataId& dataId,
                      const std::function<void(const std::filesystem::path&)>& writer,
                      const std::string& producer = {});
    /// Convenience: store bytes as a dataset.
    DatasetRecord putBytes(const std::string& datasetType, const std::string& run, const DataId& dataId,
                           const std::string& bytes, const std::string& producer = {});

    // ---- reading ----
    std::optional<DatasetRecord> find(const std::string& datasetType, const std::string& run,
                                      const DataId& dataId) const;
    bool exists(const std::string& datasetType, const std::string& run, const DataId& dataId) const;
    /// Absolute path of a recorded dataset; NotFoundError (with the data ID) if not in the manifest.
    std::filesystem::path getPath(const std::string& datasetType, const std::string& run,
                                  const DataId& dataId) const;
    /// Matching records sorted by (type, run, data ID).
    std::vector<DatasetRecord> query(const DatasetQuery& q = {}) const;
    /// Re-read size and checksum of the file against the record.
    VerifyStatus verify(const DatasetRecord& record) const;
    /// NotFoundError if the dataset is not in the manifest.
    VerifyStatus verify(const std::string& datasetType, const std::string& run, const DataId& dataId) const;

    /// Files under the run directories that are neither recorded datasets nor temp files (left by a
    /// writer killed between publishing and recording). Sorted, relative to root.
    std::vector<std::string> orphanFiles() const;

    struct Stats {
        std::size_t datasets = 0;
        std::size_t manifestFiles = 0;
        std::size_t corruptLines = 0;    ///< complete lines that failed their checksum or parse
        std::size_t duplicateLines = 0;  ///< records of an already-recorded dataset (first wins)
    };
    Stats stats() const;

    struct Impl;

private:
    explicit Repository(std::unique_ptr<Impl> impl);
    DatasetRecord commitPending(PendingDataset& pending);
    std::unique_ptr<Impl> impl_;
};

}  // namespace drp
