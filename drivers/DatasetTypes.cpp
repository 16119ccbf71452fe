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
        // Raw exposures (simulated or real), per detector, in the camera's amplifier layout.
        {"raw", StorageClass::Fits, "{run}/raw/{band}/{visit}/raw_{band}_{visit}_{detector}.fits",
         {D::Instrument, D::Band, D::Visit, D::Detector}},
        {"rawBias", StorageClass::Fits, "{run}/raw/bias/{visit}/bias_{visit}_{detector}.fits",
         {D::Instrument, D::Visit, D::Detector}},
        {"rawDark", StorageClass::Fits, "{run}/raw/dark/{visit}/dark_{visit}_{detector}.fits",
         {D::Instrument, D::Visit, D::Detector}},
        {"rawFlat", StorageClass::Fits, "{run}/raw/flat/{band}/{visit}/flat_{band}_{visit}_{detector}.fits",
         {D::Instrument, D::Band, D::Visit, D::Detector}},
        // Master calibrations and the camera characterisation they are used with.
        {"bias", StorageClass::Fits, "{run}/bias/bias_{detector}.fits", {D::Instrument, D::Detector}},
        {"dark", StorageClass::Fits, "{run}/dark/dark_{detector}.fits", {D::Instrument, D::Detector}},
        {"flat", StorageClass::Fits, "{run}/flat/{band}/flat_{band}_{detector}.fits", {D::Instrument, D::Band, D::Detector}},
        {"defects", StorageClass::Hdf5, "{run}/defects/defects_{detector}.h5", {D::Instrument, D::Detector}},
        {"ampCalib", StorageClass::Hdf5, "{run}/ampCalib/ampCalib_{detector}.h5", {D::Instrument, D::Detector}},
        // Single-visit processing outputs besides calexp and src.
        {"calexpBackground", StorageClass::Hdf5,
         "{run}/calexpBackground/{band}/{visit}/bkg_{band}_{visit}_{detector}.h5",
         {D::Instrument, D::Band, D::Visit, D::Detector}},
        // The visit-level PSF: each detector's PSF stars (candidates and cutouts), and the visit's model.
        {"psfStars", StorageClass::Hdf5, "{run}/psfStars/{band}/{visit}/psfStars_{band}_{visit}_{detector}.h5",
         {D::Instrument, D::Band, D::Visit, D::Detector}},
        {"visitPsf", StorageClass::Hdf5, "{run}/visitPsf/{band}/visitPsf_{band}_{visit}.h5", {D::Instrument, D::Band, D::Visit}},
        // Campaign outputs: the Source table of a whole visit (every detector), and the release index
        // listing every catalog partition with its row count and checksum.
        {"sourceTable_visit", StorageClass::Hdf5, "{run}/sourceTable_visit/{band}/sourceTable_{band}_{visit}.h5",
         {D::Instrument, D::Band, D::Visit}},
        {"releaseIndex", StorageClass::Hdf5, "{run}/releaseIndex.h5", {}},
        // Coadds (pipeline "coadd"): one per band and patch, in nJy; survey property maps (HDF5 table of
        // map bins) and a PNG rendering of the depth map.
        {"deepCoadd", StorageClass::Fits, "{run}/deepCoadd/{band}/{tract}/{patch}/deepCoadd_{band}_{tract}_{patch}.fits",
         {D::Band, D::Skymap, D::Tract, D::Patch}},
        {"deepCoadd_surveyProperty", StorageClass::Hdf5,
         "{run}/deepCoadd/{band}/{tract}/{patch}/surveyProperty_{band}_{tract}_{patch}.h5",
         {D::Band, D::Skymap, D::Tract, D::Patch}},
        {"deepCoadd_surveyPropertyPng", StorageClass::Fits,
         "{run}/deepCoadd/{band}/{tract}/{patch}/depth_{band}_{tract}_{patch}.png",
         {D::Band, D::Skymap, D::Tract, D::Patch}},
        // Optional coadd flavours (coadd.best_seeing_quantile, coadd.short_period_*) and the multi-band
        // detection coadd of every band of a patch.
        {"goodSeeingCoadd", StorageClass::Fits,
         "{run}/goodSeeingCoadd/{band}/{tract}/{patch}/goodSeeingCoadd_{band}_{tract}_{patch}.fits",
         {D::Band, D::Skymap, D::Tract, D::Patch}},
        {"shortPeriodCoadd", StorageClass::Fits,
         "{run}/shortPeriodCoadd/{band}/{tract}/{patch}/shortPeriodCoadd_{band}_{tract}_{patch}.fits",
         {D::Band, D::Skymap, D::Tract, D::Patch}},
        // The survey-wide best-seeing visit selection (global quantum selectBestSeeingVisits).
        {"bestSeeingVisits", StorageClass::Hdf5, "{run}/bestSeeingVisits.h5", {}},
        {"deepCoadd_detection", StorageClass::Fits, "{run}/deepCoadd/detection/{tract}/{patch}/detection_{tract}_{patch}.fits",
         {D::Skymap, D::Tract, D::Patch}},
        // Reference catalog shards (one HTM trixel each).
        {"refcat", StorageClass::Hdf5, "{run}/refcat/refcat_htm{htm}.h5", {D::Htm}},
        // Simulator truth.
        {"simConfig", StorageClass::Hdf5, "{run}/truth/sim_config.ini", {D::Instrument}},
        {"truthObjects", StorageClass::Hdf5, "{run}/truth/objects.h5", {D::Instrument}},
        {"truthVisits", StorageClass::Hdf5, "{run}/truth/visits.h5", {D::Instrument}},
        {"truthSources", StorageClass::Hdf5, "{run}/truth/sources/{band}/{visit}/sources_{band}_{visit}_{detector}.h5",
         {D::Instrument, D::Band, D::Visit, D::Detector}},
        {"truthInstrument", StorageClass::Hdf5, "{run}/truth/instrument/instrument_{detector}.h5",
         {D::Instrument, D::Detector}},
        {"truthFlat", StorageClass::Fits, "{run}/truth/flat/{band}/flat_{band}_{detector}.fits",
         {D::Instrument, D::Band, D::Detector}},
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
