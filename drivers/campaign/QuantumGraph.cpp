// QuantumGraph: packed storage, QuantumSpec bytes, tract sharding and the graph builder.
#include "drivers/campaign/QuantumGraph.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <thread>
#include <tuple>

#include "core/Error.h"

namespace drp {

// ---------------------------------------------------------------------------------------------------
// PackedDataId

namespace {

constexpr std::uint32_t kEmpty = ~0u;

std::uint64_t mix64(std::uint64_t h, std::uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 12) + (h >> 4);
    return h;
}

std::uint64_t finalize(std::uint64_t x) {  // splitmix64 finaliser
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

}  // namespace

int PackedDataId::slot(Dimension d) {
    switch (d) {
        case Dimension::Instrument: return 0;
        case Dimension::Band: return 1;
        case Dimension::PhysicalFilter: return 2;
        case Dimension::Skymap: return 3;
        case Dimension::DayObs: return 0;
        case Dimension::Visit: return 1;
        case Dimension::Detector: return 2;
        case Dimension::Tract: return 3;
        case Dimension::Patch: return 4;
        case Dimension::Htm: return 5;
    }
    throw LogicError("PackedDataId: bad dimension");
}

std::int64_t PackedDataId::getInt(Dimension d) const {
    if (dimensionIsString(d)) throw LogicError(std::string("PackedDataId: dimension '") + dimensionName(d) + "' is a string");
    if (!has(d)) throw NotFoundError(std::string("data ID has no '") + dimensionName(d) + "'");
    return ints_[slot(d)];
}

std::uint32_t PackedDataId::stringIndex(Dimension d) const {
    if (!dimensionIsString(d)) throw LogicError(std::string("PackedDataId: dimension '") + dimensionName(d) + "' is an integer");
    if (!has(d)) throw NotFoundError(std::string("data ID has no '") + dimensionName(d) + "'");
    return strs_[slot(d)];
}

std::size_t PackedDataId::size() const { return std::size_t(__builtin_popcount(mask_)); }

std::uint64_t PackedDataId::hash() const {
    std::uint64_t h = mask_;
    for (auto v : ints_) h = mix64(h, std::uint64_t(v));
    for (auto v : strs_) h = mix64(h, v);
    return finalize(h);
}

// ---------------------------------------------------------------------------------------------------
// QuantumGraph

QuantumGraph::QuantumGraph(std::vector<TaskDef> tasks) : tasks_(std::move(tasks)) {
    if (tasks_.size() > 65535) throw InvalidInputError("QuantumGraph: more than 65535 tasks");
    // Dataset types in pipeline order, so their indices do not depend on how the graph is filled.
    for (const auto& t : tasks_) {
        for (const auto& s : t.inputs) internDatasetType(s);
        for (const auto& s : t.outputs) internDatasetType(s);
    }
}

std::uint16_t QuantumGraph::internDatasetType(const std::string& name) {
    auto it = std::find(datasetTypes_.begin(), datasetTypes_.end(), name);
    if (it != datasetTypes_.end()) return std::uint16_t(it - datasetTypes_.begin());
    if (datasetTypes_.size() >= 65535) throw InvalidInputError("QuantumGraph: more than 65535 dataset types");
    datasetTypes_.push_back(name);
    return std::uint16_t(datasetTypes_.size() - 1);
}

std::uint16_t QuantumGraph::internRun(const std::string& name) {
    auto it = std::find(runs_.begin(), runs_.end(), name);
    if (it != runs_.end()) return std::uint16_t(it - runs_.begin());
    if (runs_.size() >= 65535) throw InvalidInputError("QuantumGraph: more than 65535 runs");
    runs_.push_back(name);
    return std::uint16_t(runs_.size() - 1);
}

std::uint32_t QuantumGraph::internString(const std::string& value) {
    auto [it, inserted] = stringIndex_.try_emplace(value, std::uint32_t(strings_.size()));
    if (inserted) strings_.push_back(value);
    return it->second;
}

const std::string& QuantumGraph::string(std::uint32_t index) const {
    if (index >= strings_.size()) throw LogicError("QuantumGraph: string index " + std::to_string(index) + " out of range");
    return strings_[index];
}

PackedDataId QuantumGraph::pack(const DataId& id) {
    PackedDataId p;
    for (Dimension d : allDimensions()) {
        if (!id.has(d)) continue;
        p.mask_ |= std::uint16_t(1u << static_cast<unsigned>(d));
        if (dimensionIsString(d))
            p.strs_[PackedDataId::slot(d)] = internString(id.getString(d));
        else
            p.ints_[PackedDataId::slot(d)] = id.getInt(d);
    }
    return p;
}

DataId QuantumGraph::unpack(const PackedDataId& p) const {
    DataId id;
    for (Dimension d : allDimensions()) {
        if (!p.has(d)) continue;
        if (dimensionIsString(d))
            id.set(d, string(p.strs_[PackedDataId::slot(d)]));
        else
            id.set(d, p.ints_[PackedDataId::slot(d)]);
    }
    return id;
}

DataId QuantumGraph::dataId(std::uint32_t quantum) const {
    if (quantum >= quanta_.size()) throw LogicError("QuantumGraph: quantum " + std::to_string(quantum) + " out of range");
    return unpack(quanta_[quantum].dataId);
}

std::uint64_t QuantumGraph::datasetHash(std::uint16_t type, std::uint16_t run, const PackedDataId& id) const {
    return finalize(mix64(id.hash(), (std::uint64_t(type) << 16) | run));
}

void QuantumGraph::growIndex(std::size_t minDatasets) {
    std::size_t cap = 64;
    while (cap < 2 * std::max(minDatasets, datasets_.size()) + 2) cap *= 2;
    if (cap <= index_.size()) return;
    index_.assign(cap, kEmpty);
    const std::size_t m = cap - 1;
    for (std::uint32_t n = 0; n < datasets_.size(); ++n) {
        const DatasetNode& d = datasets_[n];
        std::size_t i = datasetHash(d.type, d.run, d.dataId) & m;
        while (index_[i] != kEmpty) i = (i + 1) & m;
        index_[i] = n;
    }
}

void QuantumGraph::reserve(std::size_t quanta, std::size_t datasets) {
    quanta_.reserve(quanta);
    datasets_.reserve(datasets);
    growIndex(datasets);
}

std::optional<std::uint32_t> QuantumGraph::findDataset(std::uint16_t type, std::uint16_t run, const PackedDataId& id) const {
    if (index_.empty()) return std::nullopt;
    const std::size_t m = index_.size() - 1;
    for (std::size_t i = datasetHash(type, run, id) & m;; i = (i + 1) & m) {
        const std::uint32_t n = index_[i];
        if (n == kEmpty) return std::nullopt;
        const DatasetNode& d = datasets_[n];
        if (d.type == type && d.run == run && d.dataId == id) return n;
    }
}

std::optional<std::uint32_t> QuantumGraph::findDataset(const DatasetRef& ref) const {
    auto t = std::find(datasetTypes_.begin(), datasetTypes_.end(), ref.datasetType);
    auto r = std::find(runs_.begin(), runs_.end(), ref.run);
    if (t == datasetTypes_.end() || r == runs_.end()) return std::nullopt;
    PackedDataId p;
    for (Dimension d : allDimensions()) {
        if (!ref.dataId.has(d)) continue;
        p.mask_ |= std::uint16_t(1u << static_cast<unsigned>(d));
        if (dimensionIsString(d)) {
            auto s = stringIndex_.find(ref.dataId.getString(d));
            if (s == stringIndex_.end()) return std::nullopt;
            p.strs_[PackedDataId::slot(d)] = s->second;
        } else {
            p.ints_[PackedDataId::slot(d)] = ref.dataId.getInt(d);
        }
    }
    return findDataset(std::uint16_t(t - datasetTypes_.begin()), std::uint16_t(r - runs_.begin()), p);
}

std::uint32_t QuantumGraph::addDataset(std::uint16_t type, std::uint16_t run, const PackedDataId& id) {
    if (type >= datasetTypes_.size() || run >= runs_.size()) throw LogicError("QuantumGraph::addDataset: bad type or run index");
    if (2 * (datasets_.size() + 1) > index_.size()) growIndex(2 * datasets_.size() + 1);
    const std::size_t m = index_.size() - 1;
    std::size_t i = datasetHash(type, run, id) & m;
    for (; index_[i] != kEmpty; i = (i + 1) & m) {
        const DatasetNode& d = datasets_[index_[i]];
        if (d.type == type && d.run == run && d.dataId == id) return index_[i];
    }
    if (datasets_.size() >= kEmpty - 1) throw LogicError("QuantumGraph: too many datasets");
    DatasetNode node;
    node.type = type;
    node.run = run;
    node.dataId = id;
    datasets_.push_back(node);
    index_[i] = std::uint32_t(datasets_.size() - 1);
    return index_[i];
}

std::uint32_t QuantumGraph::addDataset(const DatasetRef& ref) {
    const std::uint16_t type = internDatasetType(ref.datasetType);
    const std::uint16_t run = internRun(ref.run);
    return addDataset(type, run, pack(ref.dataId));
}

std::uint32_t QuantumGraph::addQuantum(std::uint16_t task, const PackedDataId& dataId, std::vector<std::uint32_t> inputs,
                                       std::vector<std::uint32_t> outputs, std::int32_t tract, float cost) {
    if (task >= tasks_.size()) throw LogicError("QuantumGraph::addQuantum: task " + std::to_string(task) + " out of range");
    if (quanta_.size() >= std::size_t(std::numeric_limits<std::int32_t>::max()))
        throw LogicError("QuantumGraph: too many quanta");
    const auto self = std::uint32_t(quanta_.size());
    Quantum q;
    q.task = task;
    q.dataId = dataId;
    q.tract = tract;
    q.cost = cost;
    for (std::uint32_t d : inputs) {
        if (d >= datasets_.size()) throw LogicError("QuantumGraph::addQuantum: input dataset " + std::to_string(d) + " out of range");
        if (datasets_[d].producer >= 0) q.upstream.push_back(std::uint32_t(datasets_[d].producer));
    }
    for (std::uint32_t d : outputs) {
        if (d >= datasets_.size()) throw LogicError("QuantumGraph::addQuantum: output dataset " + std::to_string(d) + " out of range");
        if (datasets_[d].producer >= 0)
            throw LogicError("QuantumGraph::addQuantum: " + datasetTypes_[datasets_[d].type] + " " +
                             unpack(datasets_[d].dataId).toString() + " already has a producer");
    }
    std::sort(q.upstream.begin(), q.upstream.end());
    q.upstream.erase(std::unique(q.upstream.begin(), q.upstream.end()), q.upstream.end());
    q.upstream.shrink_to_fit();
    for (std::uint32_t d : outputs) datasets_[d].producer = std::int32_t(self);
    q.inputs = std::move(inputs);
    q.outputs = std::move(outputs);
    quanta_.push_back(std::move(q));
    return self;
}

std::uint32_t QuantumGraph::addQuantum(std::uint16_t task, DataId dataId, const std::vector<std::uint32_t>& inputs,
                                       const std::vector<std::uint32_t>& outputs, std::int32_t tract, float cost) {
    return addQuantum(task, pack(dataId), inputs, outputs, tract, cost);
}

DatasetRef QuantumGraph::ref(std::uint32_t dataset) const {
    if (dataset >= datasets_.size()) throw LogicError("QuantumGraph: dataset " + std::to_string(dataset) + " out of range");
    const DatasetNode& d = datasets_[dataset];
    return {datasetTypes_[d.type], runs_[d.run], unpack(d.dataId)};
}

QuantumSpec QuantumGraph::spec(std::uint32_t quantum) const {
    if (quantum >= quanta_.size()) throw LogicError("QuantumGraph: quantum " + std::to_string(quantum) + " out of range");
    const Quantum& q = quanta_[quantum];
    QuantumSpec s;
    s.task = tasks_[q.task].name;
    s.dataId = unpack(q.dataId);
    s.inputs.reserve(q.inputs.size());
    for (auto d : q.inputs) s.inputs.push_back(ref(d));
    s.outputs.reserve(q.outputs.size());
    for (auto d : q.outputs) s.outputs.push_back(ref(d));
    return s;
}

std::string QuantumGraph::label(std::uint32_t quantum) const {
    DataId id = dataId(quantum);
    id.erase(Dimension::Instrument).erase(Dimension::Skymap);
    std::string out = tasks_[quanta_[quantum].task].name;
    if (!id.empty()) out += ' ' + id.toString();
    return out;
}

std::vector<std::pair<std::string, std::size_t>> QuantumGraph::countsPerTask() const {
    std::vector<std::size_t> n(tasks_.size(), 0);
    for (const auto& q : quanta_) ++n[q.task];
    std::vector<std::pair<std::string, std::size_t>> out;
    for (std::size_t t = 0; t < tasks_.size(); ++t) out.emplace_back(tasks_[t].name, n[t]);
    return out;
}

std::vector<std::pair<int, double>> QuantumGraph::tractCosts() const {
    std::map<int, double> m;
    for (const auto& q : quanta_)
        if (q.tract >= 0) m[q.tract] += q.cost;
    return {m.begin(), m.end()};
}

std::size_t QuantumGraph::memoryBytes() const {
    std::size_t n = sizeof(*this);
    for (const auto& t : tasks_) {
        n += sizeof(TaskDef) + t.name.capacity() + t.description.capacity();
        for (const auto& s : t.inputs) n += sizeof(s) + s.capacity();
        for (const auto& s : t.outputs) n += sizeof(s) + s.capacity();
    }
    for (const auto& s : datasetTypes_) n += sizeof(s) + s.capacity();
    for (const auto& s : runs_) n += sizeof(s) + s.capacity();
    for (const auto& s : strings_) n += 2 * (sizeof(s) + s.capacity()) + 16;  // table and hash index
    n += datasets_.capacity() * sizeof(DatasetNode);
    n += quanta_.capacity() * sizeof(Quantum);
    for (const auto& q : quanta_)
        n += (q.inputs.capacity() + q.outputs.capacity() + q.upstream.capacity()) * sizeof(std::uint32_t);
    n += index_.capacity() * sizeof(std::uint32_t);
    return n;
}

// ---------------------------------------------------------------------------------------------------
// QuantumSpec bytes: "DRPQS1", then the task (string), the data ID, the inputs and the outputs (u32
// count, then per ref: type, run, data ID). Strings are a u32 length and the bytes; a data ID is a u8
// count and per dimension (ascending) a u8 dimension and an int64 or a string. Integers little-endian.

namespace {

constexpr char kSpecMagic[] = "DRPQS1";
constexpr std::size_t kSpecMagicSize = sizeof(kSpecMagic) - 1;

void putU32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out += char((v >> (8 * i)) & 0xff);
}
void putI64(std::string& out, std::int64_t value) {
    auto v = std::uint64_t(value);
    for (int i = 0; i < 8; ++i) out += char((v >> (8 * i)) & 0xff);
}
void putString(std::string& out, const std::string& s) {
    putU32(out, std::uint32_t(s.size()));
    out += s;
}
void putDataId(std::string& out, const DataId& id) {
    out += char(id.size());
    for (Dimension d : id.dimensions()) {
        out += char(static_cast<std::uint8_t>(d));
        if (dimensionIsString(d))
            putString(out, id.getString(d));
        else
            putI64(out, id.getInt(d));
    }
}
void putRefs(std::string& out, const std::vector<DatasetRef>& refs) {
    putU32(out, std::uint32_t(refs.size()));
    for (const auto& r : refs) {
        putString(out, r.datasetType);
        putString(out, r.run);
        putDataId(out, r.dataId);
    }
}

class SpecReader {
public:
    explicit SpecReader(const std::string& bytes) : s_(bytes) {}
    [[noreturn]] void fail(const std::string& what) const {
        throw InvalidInputError("QuantumSpec::fromBytes: " + what + " at byte " + std::to_string(pos_) + " of " +
                                std::to_string(s_.size()));
    }
    void need(std::size_t n) const {
        if (n > s_.size() - pos_) fail("truncated");
    }
    std::uint8_t u8() {
        need(1);
        return std::uint8_t(s_[pos_++]);
    }
    std::uint32_t u32() {
        need(4);
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= std::uint32_t(std::uint8_t(s_[pos_++])) << (8 * i);
        return v;
    }
    std::int64_t i64() {
        need(8);
        std::uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v |= std::uint64_t(std::uint8_t(s_[pos_++])) << (8 * i);
        return std::int64_t(v);
    }
    std::string str() {
        const std::uint32_t n = u32();
        need(n);
        std::string out = s_.substr(pos_, n);
        pos_ += n;
        return out;
    }
    DataId dataId() {
        const std::uint8_t n = u8();
        if (n > kDimensionCount) fail("data ID with " + std::to_string(n) + " dimensions");
        DataId id;
        int last = -1;
        for (std::uint8_t k = 0; k < n; ++k) {
            const std::uint8_t d = u8();
            if (d >= kDimensionCount || int(d) <= last) fail("bad or repeated dimension " + std::to_string(d));
            last = d;
            const auto dim = static_cast<Dimension>(d);
            if (dimensionIsString(dim))
                id.set(dim, str());
            else
                id.set(dim, i64());
        }
        return id;
    }
    std::vector<DatasetRef> refs() {
        const std::uint32_t n = u32();
        if (n > (s_.size() - pos_) / 9) fail("ref count " + std::to_string(n) + " exceeds the remaining bytes");
        std::vector<DatasetRef> out;
        out.reserve(n);
        for (std::uint32_t k = 0; k < n; ++k) {
            DatasetRef r;
            r.datasetType = str();
            r.run = str();
            r.dataId = dataId();
            out.push_back(std::move(r));
        }
        return out;
    }
    bool atEnd() const { return pos_ == s_.size(); }
    void expectMagic() {
        if (s_.size() < kSpecMagicSize || s_.compare(0, kSpecMagicSize, kSpecMagic) != 0) fail("not a quantum spec");
        pos_ = kSpecMagicSize;
    }

private:
    const std::string& s_;
    std::size_t pos_ = 0;
};

}  // namespace

std::string QuantumSpec::toBytes() const {
    std::string out(kSpecMagic, kSpecMagicSize);
    putString(out, task);
    putDataId(out, dataId);
    putRefs(out, inputs);
    putRefs(out, outputs);
    return out;
}

QuantumSpec QuantumSpec::fromBytes(const std::string& bytes) {
    SpecReader r(bytes);
    r.expectMagic();
    QuantumSpec s;
    s.task = r.str();
    s.dataId = r.dataId();
    s.inputs = r.refs();
    s.outputs = r.refs();
    if (!r.atEnd()) r.fail("trailing bytes");
    return s;
}

// ---------------------------------------------------------------------------------------------------
// Sharding

std::vector<std::vector<int>> shardTracts(const std::vector<std::pair<int, double>>& tractCosts, int count) {
    if (count < 1) throw InvalidInputError("shardTracts: the share count must be >= 1, got " + std::to_string(count));
    std::vector<std::pair<int, double>> items = tractCosts;
    for (const auto& [tract, cost] : items)
        if (!(cost >= 0.0) || !std::isfinite(cost))
            throw InvalidInputError("shardTracts: tract " + std::to_string(tract) + " has cost " + std::to_string(cost));
    // Largest first; equal costs by ascending tract id.
    std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
        return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    {
        std::vector<int> ids;
        ids.reserve(items.size());
        for (const auto& it : items) ids.push_back(it.first);
        std::sort(ids.begin(), ids.end());
        if (std::adjacent_find(ids.begin(), ids.end()) != ids.end())
            throw InvalidInputError("shardTracts: tract " + std::to_string(*std::adjacent_find(ids.begin(), ids.end())) +
                                    " is listed twice");
    }
    std::vector<std::vector<int>> shares(static_cast<std::size_t>(count));
    std::vector<double> load(static_cast<std::size_t>(count), 0.0);
    for (const auto& [tract, cost] : items) {
        // Lightest share; ties by lowest share index.
        const auto s = std::size_t(std::min_element(load.begin(), load.end()) - load.begin());
        shares[s].push_back(tract);
        load[s] += cost;
    }
    for (auto& s : shares) std::sort(s.begin(), s.end());
    return shares;
}


// ---------------------------------------------------------------------------------------------------
// Building

PackedDataId PackedDataId::project(std::uint16_t mask) const {
    PackedDataId out;
    for (Dimension d : allDimensions()) {
        if (!has(d) || !((mask >> static_cast<unsigned>(d)) & 1u)) continue;
        out.mask_ |= std::uint16_t(1u << static_cast<unsigned>(d));
        if (dimensionIsString(d))
            out.strs_[slot(d)] = strs_[slot(d)];
        else
            out.ints_[slot(d)] = ints_[slot(d)];
    }
    return out;
}

struct QuantumGraphBuilder {
    static void setInt(PackedDataId& p, Dimension d, std::int64_t v) {
        p.ints_[PackedDataId::slot(d)] = v;
        p.mask_ |= std::uint16_t(1u << static_cast<unsigned>(d));
    }
    static void setString(PackedDataId& p, Dimension d, std::uint32_t v) {
        p.strs_[PackedDataId::slot(d)] = v;
        p.mask_ |= std::uint16_t(1u << static_cast<unsigned>(d));
    }
};

namespace {

constexpr std::uint16_t bit(Dimension d) { return std::uint16_t(1u << static_cast<unsigned>(d)); }
constexpr std::uint16_t kI = bit(Dimension::Instrument), kB = bit(Dimension::Band), kV = bit(Dimension::Visit),
                        kD = bit(Dimension::Detector), kS = bit(Dimension::Skymap), kT = bit(Dimension::Tract),
                        kP = bit(Dimension::Patch);

std::uint16_t levelMask(QuantumLevel level) {
    switch (level) {
        case QuantumLevel::VisitDetector: return kI | kB | kV | kD;
        case QuantumLevel::Visit: return kI | kB | kV;
        case QuantumLevel::VisitPatch: return kI | kB | kV | kS | kT | kP;
        case QuantumLevel::PatchBand: return kB | kS | kT | kP;
        case QuantumLevel::Patch: return kS | kT | kP;
        case QuantumLevel::Global: return 0;
    }
    return 0;
}

bool isSubset(std::uint16_t a, std::uint16_t b) { return (a & ~b) == 0; }

/// External inputs of visit-detector tasks: the raw (its own data ID, raw run) and the calibrations
/// (calib run, data ID restricted to `mask`).
struct ExternalInput {
    const char* name;
    std::uint16_t mask;  // 0xffff: the exposure's whole data ID
};
constexpr ExternalInput kExternal[] = {{"raw", 0xffff},     {"bias", kI | kD},    {"dark", kI | kD},
                                       {"flat", kI | kB | kD}, {"ampCalib", kI | kD}, {"defects", kI | kD}};

const ExternalInput* findExternal(const std::string& name) {
    for (const auto& e : kExternal)
        if (name == e.name) return &e;
    return nullptr;
}

/// How a task reads one input type.
enum class InputKind : std::uint8_t {
    External,  // raw or calibration (visit-detector tasks)
    Single,    // the one dataset whose data ID is the quantum's restricted to the input's level
    Gather,    // every dataset whose data ID restricted to the task's level is the quantum's
    Overlap    // visit-patch (patch-band) from visit-detector: the detectors of the visit (band) that overlap the patch
};

struct InputPlan {
    std::uint16_t type = 0;
    InputKind kind = InputKind::Single;
    std::uint16_t mask = 0;  // the input's level (Single), external mask (External)
    bool raw = false;
};

std::vector<std::vector<InputPlan>> planInputs(const std::vector<TaskDef>& pipeline, QuantumGraph& g) {
    std::map<std::string, std::size_t> producer;
    std::vector<std::vector<InputPlan>> plans(pipeline.size());
    for (std::size_t t = 0; t < pipeline.size(); ++t) {
        const TaskDef& td = pipeline[t];
        const std::uint16_t mL = levelMask(td.level);
        auto fail = [&](const std::string& what) {
            throw InvalidInputError("pipeline task '" + td.name + "' (" + quantumLevelName(td.level) + "): " + what);
        };
        bool defining = td.level == QuantumLevel::VisitDetector || td.level == QuantumLevel::Global;
        for (const auto& in : td.inputs) {
            InputPlan p;
            p.type = g.internDatasetType(in);
            if (auto it = producer.find(in); it != producer.end()) {
                const QuantumLevel lM = pipeline[it->second].level;
                const std::uint16_t mM = levelMask(lM);
                if (td.level != QuantumLevel::VisitDetector && isSubset(mL, mM)) {
                    p.kind = InputKind::Gather;
                    defining = true;
                } else if (isSubset(mM, mL)) {
                    p.kind = InputKind::Single;
                    p.mask = mM;
                } else if ((td.level == QuantumLevel::VisitPatch || td.level == QuantumLevel::PatchBand) &&
                           lM == QuantumLevel::VisitDetector) {
                    p.kind = InputKind::Overlap;
                    defining = true;
                } else {
                    fail("cannot read " + in + " (" + quantumLevelName(lM) + " level)");
                }
            } else if (const ExternalInput* e = findExternal(in)) {
                if (td.level != QuantumLevel::VisitDetector) fail("external input " + in + " needs a visit-detector task");
                p.kind = InputKind::External;
                p.mask = e->mask;
                p.raw = e->mask == 0xffff;
            } else {
                bool later = false;
                for (std::size_t u = t; u < pipeline.size(); ++u)
                    later = later || std::count(pipeline[u].outputs.begin(), pipeline[u].outputs.end(), in) > 0;
                fail(later ? "reads " + in + ", produced by the same or a later task"
                           : "reads " + in + ", which no task produces and which is not an external input");
            }
            plans[t].push_back(p);
        }
        if (!defining) fail("its quanta cannot be derived from its inputs (it needs an input at least as fine as its level)");
        for (const auto& out : td.outputs) {
            if (findExternal(out)) fail("writes " + out + ", an external input type");
            if (!producer.emplace(out, t).second) fail("writes " + out + ", also written by '" + pipeline[producer[out]].name + "'");
        }
    }
    return plans;
}

/// (tract, patch) pairs whose outer box overlaps each exposure (centre only if it has no corners).
std::vector<std::vector<std::pair<int, int>>> computeOverlaps(const std::vector<ExposureRegion>& exposures,
                                                             const std::vector<std::uint32_t>& order, const SkyMap& skyMap) {
    const std::size_t n = order.size();
    std::vector<std::vector<std::pair<int, int>>> out(n);
    auto work = [&](std::size_t lo, std::size_t hi) {
        for (std::size_t k = lo; k < hi; ++k) {
            const ExposureRegion& e = exposures[order[k]];
            try {
                if (e.corners.empty()) {
                    const TractInfo& t = skyMap.tract(skyMap.findTract(e.center));
                    out[k].emplace_back(t.id, skyMap.findPatch(t, e.center).index);
                    continue;
                }
                for (const auto& [tract, patches] : skyMap.findOverlaps(e.corners))
                    for (int p : patches) out[k].emplace_back(tract, p);
            } catch (const Error& err) {
                throw InvalidInputError("exposure region: " + err.message(), {}, e.dataId.toString());
            }
        }
    };
    const unsigned hw = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
    const std::size_t nThreads = n < 4096 ? 1 : hw;
    if (nThreads == 1) {
        work(0, n);
        return out;
    }
    std::vector<std::thread> threads;
    std::vector<std::exception_ptr> errors(nThreads);
    for (std::size_t i = 0; i < nThreads; ++i) {
        threads.emplace_back([&, i] {
            try {
                work(n * i / nThreads, n * (i + 1) / nThreads);
            } catch (...) {
                errors[i] = std::current_exception();
            }
        });
    }
    for (auto& th : threads) th.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);  // the first block's error: deterministic
    return out;
}

}  // namespace

QuantumGraph buildQuantumGraph(const std::vector<TaskDef>& pipeline, std::vector<ExposureRegion> exposures,
                               const SkyMap& skyMap, const CampaignRuns& runs, const GraphBuildOptions& options) {
    using B = QuantumGraphBuilder;
    QuantumGraph g(pipeline);
    const auto plans = planInputs(pipeline, g);

    // Exposures in data-ID order (sorted indices; the listing is not moved).
    for (const auto& e : exposures) {
        for (Dimension d : {Dimension::Instrument, Dimension::Band, Dimension::Visit, Dimension::Detector})
            if (!e.dataId.has(d))
                throw InvalidInputError(std::string("exposure data ID lacks ") + dimensionName(d), {}, e.dataId.toString());
        if (!e.corners.empty() && e.corners.size() < 3)
            throw InvalidInputError("exposure region has " + std::to_string(e.corners.size()) + " corners (needs 0 or >= 3)",
                                    {}, e.dataId.toString());
    }
    // Order: instrument, band (alphabetical ranks), visit, detector; equal keys (an error, reported
    // below) by the whole data ID.
    struct SortKey {
        std::uint32_t instrument, band;
        std::int64_t visit, detector;
        std::uint32_t index;
    };
    std::map<std::string, std::uint32_t> instrumentRank, bandRank;
    for (const auto& e : exposures) {
        instrumentRank.emplace(e.dataId.getString(Dimension::Instrument), 0);
        bandRank.emplace(e.dataId.getString(Dimension::Band), 0);
    }
    std::uint32_t rank = 0;
    for (auto& [name, r] : instrumentRank) r = rank++;
    rank = 0;
    for (auto& [name, r] : bandRank) r = rank++;
    std::vector<SortKey> keys(exposures.size());
    for (std::uint32_t i = 0; i < exposures.size(); ++i) {
        const DataId& id = exposures[i].dataId;
        keys[i] = {instrumentRank.at(id.getString(Dimension::Instrument)), bandRank.at(id.getString(Dimension::Band)),
                   id.getInt(Dimension::Visit), id.getInt(Dimension::Detector), i};
    }
    auto sameVisitDetector = [](const SortKey& a, const SortKey& b) {
        return a.instrument == b.instrument && a.band == b.band && a.visit == b.visit && a.detector == b.detector;
    };
    std::sort(keys.begin(), keys.end(), [&](const SortKey& a, const SortKey& b) {
        if (!sameVisitDetector(a, b))
            return std::tie(a.instrument, a.band, a.visit, a.detector) < std::tie(b.instrument, b.band, b.visit, b.detector);
        return exposures[a.index].dataId < exposures[b.index].dataId;
    });
    std::vector<std::uint32_t> order(exposures.size());
    for (std::size_t k = 0; k < keys.size(); ++k) {
        order[k] = keys[k].index;
        if (k > 0 && sameVisitDetector(keys[k], keys[k - 1]))
            throw InvalidInputError("two exposures of the same visit and detector", {}, exposures[order[k]].dataId.toString());
    }
    keys = {};
    const std::size_t n = order.size();

    const std::uint16_t rawRun = g.internRun(runs.raw), calibRun = g.internRun(runs.calib), outRun = g.internRun(runs.output);
    const std::uint32_t skymap = g.internString(options.skymapName);
    // Visit-detector keys, interned in sorted order (so string indices do not depend on the input order).
    std::vector<PackedDataId> vd(n);
    for (std::size_t k = 0; k < n; ++k) {
        const DataId& id = exposures[order[k]].dataId;
        B::setString(vd[k], Dimension::Instrument, g.internString(id.getString(Dimension::Instrument)));
        B::setString(vd[k], Dimension::Band, g.internString(id.getString(Dimension::Band)));
        B::setInt(vd[k], Dimension::Visit, id.getInt(Dimension::Visit));
        B::setInt(vd[k], Dimension::Detector, id.getInt(Dimension::Detector));
    }

    // The shard key of a visit: the tract holding the centre of its detectors (the normalised mean of their centres'
    // unit vectors). Every visit-detector and visit quantum of a visit carries it, so that a visit's quanta (its
    // detectors, the visit-level PSF between their steps, the consolidation) run in one Slurm share.
    std::vector<std::int32_t> visitTract(n, -1);
    std::map<PackedDataId, std::int32_t> tractOfVisit;
    for (std::size_t lo = 0; lo < n;) {
        const PackedDataId visitKey = vd[lo].project(kI | kB | kV);
        std::size_t hi = lo;
        Eigen::Vector3d sum = Eigen::Vector3d::Zero();
        for (; hi < n && vd[hi].project(kI | kB | kV) == visitKey; ++hi) sum += exposures[order[hi]].center.vector();
        const SpherePoint centre = sum.norm() > 0 ? SpherePoint::fromVector(sum) : exposures[order[lo]].center;
        const std::int32_t tract = std::int32_t(skyMap.findTract(centre));
        tractOfVisit.emplace(visitKey, tract);
        for (std::size_t k = lo; k < hi; ++k) visitTract[k] = tract;
        lo = hi;
    }

    bool needOverlaps = false;
    for (const auto& p : plans)
        for (const auto& in : p) needOverlaps = needOverlaps || in.kind == InputKind::Overlap;
    std::vector<std::vector<std::pair<int, int>>> overlaps;
    if (needOverlaps) overlaps = computeOverlaps(exposures, order, skyMap);

    std::size_t nVisitDetector = 0, nVisitDetectorOutputs = 0;
    for (const auto& td : pipeline)
        if (td.level == QuantumLevel::VisitDetector) {
            ++nVisitDetector;
            nVisitDetectorOutputs += td.outputs.size();
        }
    g.reserve(n * nVisitDetector + n / 64 + 16, n * (nVisitDetectorOutputs + 1) + n / 8 + 4096);  // + calibrations

    std::vector<std::vector<std::uint32_t>> byType(g.datasetTypes().size());  // produced datasets per type
    auto addOutputs = [&](const TaskDef& td, const PackedDataId& key) {
        std::vector<std::uint32_t> outs;
        outs.reserve(td.outputs.size());
        for (const auto& o : td.outputs) {
            const std::uint16_t type = g.internDatasetType(o);
            outs.push_back(g.addDataset(type, outRun, key));
            byType[type].push_back(outs.back());
        }
        return outs;
    };
    auto findSingle = [&](const InputPlan& p, const PackedDataId& key, std::vector<std::uint32_t>& inputs) {
        if (auto d = g.findDataset(p.type, outRun, key.project(p.mask))) inputs.push_back(*d);
    };

    struct Entry {
        PackedDataId key;
        std::uint32_t slot;
        std::uint32_t dataset;
    };
    std::vector<Entry> entries;
    for (std::size_t t = 0; t < pipeline.size(); ++t) {
        const TaskDef& td = pipeline[t];
        const auto& plan = plans[t];
        const auto task = std::uint16_t(t);
        const auto cost = float(td.cost);
        if (td.level == QuantumLevel::VisitDetector) {
            for (std::size_t k = 0; k < n; ++k) {
                const ExposureRegion& e = exposures[order[k]];
                std::vector<std::uint32_t> inputs;
                inputs.reserve(plan.size());
                for (const auto& p : plan) {
                    if (p.kind == InputKind::External)
                        inputs.push_back(p.raw ? g.addDataset(p.type, rawRun, g.pack(e.dataId))
                                               : g.addDataset(p.type, calibRun, vd[k].project(p.mask)));
                    else
                        findSingle(p, vd[k], inputs);
                }
                g.addQuantum(task, vd[k], std::move(inputs), addOutputs(td, vd[k]), visitTract[k], cost);
            }
            continue;
        }
        const std::uint16_t mL = levelMask(td.level);
        entries.clear();
        for (std::uint32_t slot = 0; slot < plan.size(); ++slot) {
            const InputPlan& p = plan[slot];
            if (p.kind == InputKind::Gather) {
                for (std::uint32_t d : byType[p.type]) entries.push_back({g.datasets()[d].dataId.project(mL), slot, d});
            } else if (p.kind == InputKind::Overlap) {
                for (std::size_t k = 0; k < n; ++k) {
                    auto d = g.findDataset(p.type, outRun, vd[k]);
                    if (!d) continue;
                    PackedDataId key = vd[k].project(kI | kB | kV);
                    B::setString(key, Dimension::Skymap, skymap);
                    for (const auto& [tract, patch] : overlaps[k]) {
                        B::setInt(key, Dimension::Tract, tract);
                        B::setInt(key, Dimension::Patch, patch);
                        entries.push_back({key.project(mL), slot, *d});  // patch-band: drops instrument, visit
                    }
                }
            }
        }
        std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
            if (auto c = a.key <=> b.key; c != 0) return c < 0;
            return a.slot != b.slot ? a.slot < b.slot : a.dataset < b.dataset;
        });
        bool hasDefining = false;
        for (const auto& p : plan) hasDefining = hasDefining || p.kind == InputKind::Gather || p.kind == InputKind::Overlap;
        if (!hasDefining) {  // a global task reading only global datasets: one quantum
            std::vector<std::uint32_t> inputs;
            for (const auto& p : plan) findSingle(p, PackedDataId{}, inputs);
            g.addQuantum(task, PackedDataId{}, std::move(inputs), addOutputs(td, PackedDataId{}), -1, cost);
            continue;
        }
        for (std::size_t lo = 0; lo < entries.size();) {
            std::size_t hi = lo + 1;
            while (hi < entries.size() && entries[hi].key == entries[lo].key) ++hi;
            const PackedDataId key = entries[lo].key;
            std::vector<std::uint32_t> inputs;
            inputs.reserve(hi - lo + plan.size());
            std::size_t e = lo;
            for (std::uint32_t slot = 0; slot < plan.size(); ++slot) {
                if (plan[slot].kind == InputKind::Single) {
                    findSingle(plan[slot], key, inputs);
                    continue;
                }
                for (; e < hi && entries[e].slot == slot; ++e) inputs.push_back(entries[e].dataset);
            }
            std::int32_t tract = key.has(Dimension::Tract) ? std::int32_t(key.getInt(Dimension::Tract)) : -1;
            if (td.level == QuantumLevel::Visit)
                if (auto it = tractOfVisit.find(key); it != tractOfVisit.end()) tract = it->second;
            g.addQuantum(task, key, std::move(inputs), addOutputs(td, key), tract, cost);
            lo = hi;
        }
    }
    return g;
}

}  // namespace drp
