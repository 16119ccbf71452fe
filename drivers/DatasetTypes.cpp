#include "drivers/DatasetTypes.h"

#include <filesystem>

#include "io/Repository.h"

namespace drp {

const std::vector<DatasetType>& standardDatasetTypes() {
    using D = Dimension;
    static const std::vector<DatasetType> types = {
        {"calexp", StorageClass::Fits, "{run}/calexp/{band}/{visit}/calexp_{band}_{visit}_{detector}.fits",
         {D::Instrument, D::Band, D::Visit, D::Detector}},
        {"src", StorageClass::Hdf5, "{run}/src/{band}/{visit}/src_{band}_{visit}_{detector}.h5",
         {D::Instrument, D::Band, D::Visit, D::Detector}},
        {"truth", StorageClass::Hdf5, "{run}/truth/{band}/{visit}/truth_{band}_{visit}_{detector}.h5",
         {D::Instrument, D::Band, D::Visit, D::Detector}},
    };
    return types;
}

Repository openOrCreateRepository(const std::filesystem::path& root) {
    Repository repo = Repository::create(root);  // opens an existing repository
    for (const auto& t : standardDatasetTypes())
        if (!repo.hasDatasetType(t.name)) repo.registerDatasetType(t);
    return repo;
}

}  // namespace drp
