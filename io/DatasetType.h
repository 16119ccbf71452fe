// DatasetType: a named kind of dataset in the repository (calexp, src, deepCoadd...): its storage
// class (the file format, which only callers know how to write), the dimensions of its data IDs,
// and the path template that places each dataset in the repository tree, e.g.
//   calexp: fits, {band, visit, detector}, "{run}/calexp/{band}/{visit}/calexp_{visit}_{detector}.fits"
// Placeholders are {run}, {datasetType} and the dimension names. A template must contain {run}; it
// may leave out dimensions that others imply (e.g. instrument), but then two data IDs differing only
// in those would share a path: the repository refuses the second (ConflictError), never overwrites.
#pragma once

#include <string>
#include <vector>

#include "core/DataId.h"

namespace drp {

enum class StorageClass { Fits, Hdf5 };
/// "fits" or "hdf5".
const char* storageClassName(StorageClass s);
/// Inverse of storageClassName; throws ConfigError otherwise.
StorageClass parseStorageClass(const std::string& name);

struct DatasetType {
    std::string name;                   ///< [A-Za-z][A-Za-z0-9_]*
    StorageClass storageClass = StorageClass::Fits;
    std::string pathTemplate;           ///< relative path with {placeholders}
    std::vector<Dimension> dimensions;  ///< the data ID keys of this type's datasets

    /// Throws ConfigError: bad name, no {run}, a placeholder that is not {run}, {datasetType} or one
    /// of the type's dimensions, an absolute template, empty/"."/".." components, repeated dimensions.
    void validate() const;
    /// The relative path of the dataset (run, dataId); dataId must hold every dimension of the type
    /// (extra dimensions are ignored). Throws LogicError for missing dimensions or values that are
    /// not safe path components (empty, containing '/', starting with '.').
    std::string expand(const std::string& run, const DataId& dataId) const;

    friend bool operator==(const DatasetType&, const DatasetType&) = default;
};

}  // namespace drp
