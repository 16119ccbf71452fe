// HDF5 catalogs: one group per table, one 1-d dataset per column (chunked, optionally compressed),
// in schema order (link creation order is tracked). Every column dataset has string attributes
// `unit` and `description`; table metadata (PropertyList) becomes attributes of the group (bool as
// the h5py boolean enum, int64, float64, fixed-length UTF-8 strings; a non-empty comment is stored
// as attribute "comment:<key>"). h5py and pandas read the files directly.
//
// On-disk column types: int32/int64 little-endian integers, IEEE float32/float64, flags as the
// h5py boolean enum (int8 FALSE=0/TRUE=1), strings as fixed-length NUL-padded UTF-8 whose width is
// the longest value (at least 1 byte). Fixed-length strings keep the parallel writer possible
// (parallel HDF5 cannot write variable-length data); the price is that strings may not contain NUL.
//
// Reading reconstructs the schema from the file; it also accepts other integer widths, variable-
// length strings and files without creation-order tracking (columns then come in name order).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/Communicator.h"
#include "core/Table.h"
#include "io/Hdf5File.h"

namespace drp {

struct Hdf5CatalogOptions {
    /// Rows per chunk; a chunk is also capped at 4 MiB and at the table's length. 0 writes
    /// contiguous (unchunked, fixed-size, uncompressed) columns: fastest for write-once catalogs.
    std::size_t chunkRows = 65536;
    /// gzip level 0-9; 0 writes uncompressed chunks.
    int deflateLevel = 0;
    /// Byte-shuffle filter before gzip (ignored when deflateLevel is 0).
    bool shuffle = true;

    /// Throws ConfigError on out-of-range values.
    void validate() const;
    friend bool operator==(const Hdf5CatalogOptions&, const Hdf5CatalogOptions&) = default;
};

/// What a parallel write did on this rank.
struct Hdf5ParallelWriteInfo {
    std::int64_t localRows = 0;
    std::int64_t rowOffset = 0;  ///< exclusive prefix sum of the row counts of lower ranks
    std::int64_t totalRows = 0;
    /// One entry per column written (none when the table has 0 rows in total):
    /// H5D_mpio_actual_io_mode_t read back from the transfer property list after H5Dwrite,
    /// and the local/global H5D_mpio_no_collective_cause_t bit masks.
    std::vector<int> actualIoModes;
    std::vector<std::uint32_t> localNoCollectiveCause;
    std::vector<std::uint32_t> globalNoCollectiveCause;
    /// True if every column write reported collective I/O (chunk or contiguous collective).
    bool allCollective() const;
};

/// Write `table` as group `group` ("name" or "a/b", intermediate groups are created) of an open,
/// writable file. Throws ConflictError if the group exists, Hdf5Error on HDF5 failures,
/// LogicError for strings containing NUL or metadata keys starting with "comment:".
void writeTable(Hdf5File& file, const std::string& group, const Table& table,
                const Hdf5CatalogOptions& options = {});

/// Collective write into a file opened with Hdf5File::openParallel: each rank passes its own rows
/// (any count, 0 included); schema and metadata must be equal on every rank (LogicError on every
/// rank otherwise). Rows land in rank order: the file holds the concatenation of the ranks' tables,
/// exactly what writeTable of that concatenation would hold. Every column is written with one
/// collective H5Dwrite (H5FD_MPIO_COLLECTIVE) of each rank's hyperslab.
Hdf5ParallelWriteInfo writeTableParallel(Hdf5File& file, const std::string& group, const Table& localRows,
                                         const Hdf5CatalogOptions& options = {});

/// Read group `group` back into a Table. NotFoundError if the group is missing, Hdf5Error if it
/// is not a table (columns of unequal length, unsupported types, ...).
Table readTable(const Hdf5File& file, const std::string& group);
/// Only the named columns, in the given order; NotFoundError names a missing column.
Table readTable(const Hdf5File& file, const std::string& group, const std::vector<std::string>& columns);
/// Names of the groups directly under `parent` (creation order when tracked).
std::vector<std::string> listTables(const Hdf5File& file, const std::string& parent = "/");

/// Convenience: create (truncate) `path` and write one table.
void writeCatalog(const std::filesystem::path& path, const std::string& group, const Table& table,
                  const Hdf5CatalogOptions& options = {});
/// Convenience: open `path` read-only and read one table.
Table readCatalog(const std::filesystem::path& path, const std::string& group);
/// Convenience: collectively create (truncate) `path` and write each rank's rows.
Hdf5ParallelWriteInfo writeCatalogParallel(const Communicator& comm, const std::filesystem::path& path,
                                           const std::string& group, const Table& localRows,
                                           const Hdf5CatalogOptions& options = {});

}  // namespace drp
