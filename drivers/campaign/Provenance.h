// Provenance: what made an output — the quantum (task and data ID), the software version, the effective
// processing config and every input dataset with its checksum. Written into the output itself as header
// keys (FITS primary HDU) or attributes (HDF5 table group), so a file carries its own history:
//
//   DRPVERS  software version            PRVTASK  "singleVisit band=r visit=3 detector=1"
//   PRVCFGH  XXH3-64 of PRVCFG (hex)     PRVCFG   "key=value;key=value;..." (sorted keys; FITS long string)
//   PRVNIN   number of inputs            PRVIN1.. "datasetType run dataId checksum" (dataId in its
//                                                  canonical form, which may hold spaces; the checksum
//                                                  is the last word, the type and run the first two)
//
// Nothing rank-, host- or time-dependent is recorded, so outputs stay byte-identical across rank counts
// and across a kill and --resume.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/PropertyList.h"

namespace drp {

struct ProvenanceInput {
    std::string datasetType;
    std::string run;
    std::string dataId;    ///< canonical DataId string
    std::string checksum;  ///< XXH3-128 hex from the manifest
    friend bool operator==(const ProvenanceInput&, const ProvenanceInput&) = default;
};

struct Provenance {
    std::string task;                           ///< quantum label
    std::string softwareVersion;                ///< defaults to DRP_VERSION
    std::map<std::string, std::string> config;  ///< effective config, key -> value
    std::vector<ProvenanceInput> inputs;

    Provenance();
    std::string configText() const;  ///< "key=value;..." in key order
    std::string configHash() const;  ///< XXH3-64 hex of configText()
    /// Adds (replaces) the keys listed above.
    void addTo(PropertyList& md) const;
    /// Inverse of addTo; InvalidInputError if PRVTASK is missing or an input key is malformed.
    static Provenance fromMetadata(const PropertyList& md);
    friend bool operator==(const Provenance&, const Provenance&) = default;
};

}  // namespace drp
