// The engine's standard dataset types (name, storage, path template, dimensions), registered in
// every repository the drivers create, so all commands agree on where things live.
#pragma once

#include <filesystem>
#include <vector>

#include "io/DatasetType.h"

namespace drp {

class Repository;

/// Every standard dataset type.
const std::vector<DatasetType>& standardDatasetTypes();
/// Open the repository at `root`, creating it (and registering the standard types) if needed.
Repository openOrCreateRepository(const std::filesystem::path& root);

}  // namespace drp
