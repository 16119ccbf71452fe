#include "io/Repository.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <unistd.h>
#include <unordered_map>

#include "core/Error.h"
#include "core/Log.h"
#include "io/Checksum.h"

namespace fs = std::filesystem;

namespace drp {

namespace {

constexpr const char* kMarker = "drp_repo.json";
constexpr const char* kMarkerText = "{\"format\":\"drp-repo\",\"version\":1}\n";

// ---- a minimal flat JSON object: string and unsigned integer values --------------------------

using Json = std::map<std::string, std::string>;  // integers are kept as their digits

std::string jsonEscape(const std::string& s) {
    std::string out;
    for (char c : s) {
        unsigned char u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", u);
            out += buf;
        } else {
            out += c;
        }
    }
    return out;
}

void jsonField(std::string& out, const char* key, const std::string& value) {
    out += out.size() > 1 ? ",\"" : "\"";
    out += key;
    out += "\":\"";
    out += jsonEscape(value);
    out += '"';
}

void jsonField(std::string& out, const char* key, std::uint64_t value) {
    out += out.size() > 1 ? ",\"" : "\"";
    out += key;
    out += "\":";
    out += std::to_string(value);
}

/// Parse {"k":"v","n":123,...}; returns false on any syntax error.
bool parseJson(const std::string& s, Json& out) {
    std::size_t i = 0;
    auto ws = [&] {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
    };
    auto str = [&](std::string& v) -> bool {
        if (i >= s.size() || s[i] != '"') return false;
        ++i;
        while (i < s.size() && s[i] != '"') {
            if (s[i] == '\\') {
                if (++i >= s.size()) return false;
                char e = s[i++];
                switch (e) {
                    case '"': v += '"'; break;
                    case '\\': v += '\\'; break;
                    case '/': v += '/'; break;
                    case 'n': v += '\n'; break;
                    case 't': v += '\t'; break;
                    case 'r': v += '\r'; break;
                    case 'u': {
                        if (i + 4 > s.size()) return false;
                        unsigned code = 0;
                        for (int k = 0; k < 4; ++k) {
                            char h = s[i++];
                            code <<= 4;
                            if (h >= '0' && h <= '9') code |= unsigned(h - '0');
                            else if (h >= 'a' && h <= 'f') code |= unsigned(h - 'a' + 10);
                            else if (h >= 'A' && h <= 'F') code |= unsigned(h - 'A' + 10);
                            else return false;
                        }
                        if (code > 0x7f) return false;  // we only ever escape control characters
                        v += static_cast<char>(code);
                        break;
                    }
                    default: return false;
                }
            } else {
                v += s[i++];
            }
        }
        if (i >= s.size()) return false;
        ++i;
        return true;
    };
    ws();
    if (i >= s.size() || s[i++] != '{') return false;
    ws();
    if (i < s.size() && s[i] == '}') return ++i, ws(), i == s.size();
    for (;;) {
        std::string key, value;
        ws();
        if (!str(key)) return false;
        ws();
        if (i >= s.size() || s[i++] != ':') return false;
        ws();
        if (i < s.size() && s[i] == '"') {
            if (!str(value)) return false;
        } else {
            std::size_t b = i;
            while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
            if (i == b) return false;
            value = s.substr(b, i - b);
        }
        if (out.count(key)) return false;
        out[key] = value;
        ws();
        if (i >= s.size()) return false;
        if (s[i] == ',') {
            ++i;
            continue;
        }
        if (s[i] != '}') return false;
        ++i;
        ws();
        return i == s.size();
    }
}

// ---- names and files -------------------------------------------------------------------------

void validateRun(const std::string& run) {
    bool ok = !run.empty() && run.front() != '/' && run.back() != '/';
    std::size_t i = 0;
    while (ok && i <= run.size()) {
        std::size_t j = run.find('/', i);
        if (j == std::string::npos) j = run.size();
        std::string part = run.substr(i, j - i);
        ok = !part.empty() && part[0] != '.' && !(i == 0 && part[0] == '_') && part != kMarker;
        for (char c : part)
            ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == '+' ||
                        c == ',' || c == '~' || c == '@');
        i = j + 1;
    }
    if (!ok)
        throw LogicError("bad run name '" + run +
                         "' (segments of [A-Za-z0-9_.+,~@-] separated by '/', none starting with '.', "
                         "the first not starting with '_')");
}

std::string encodeRun(const std::string& run) {
    std::string out;
    for (char c : run) {
        if (c == '/') out += "%2F";
        else if (c == '%') out += "%25";
        else out += c;
    }
    return out;
}

std::string decodeRun(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && s.compare(i, 3, "%2F") == 0) {
            out += '/';
            i += 2;
        } else if (s[i] == '%' && s.compare(i, 3, "%25") == 0) {
            out += '%';
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string readWholeFile(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw IoError("cannot read", p.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// Write `text` to `dest` atomically, never replacing an existing file (ConflictError if present).
void publishText(const fs::path& dest, const std::string& text) {
    AtomicFile f(dest);
    {
        std::ofstream out(f.tempPath(), std::ios::binary | std::ios::trunc);
        out << text;
        out.close();
        if (!out) throw IoError("cannot write " + f.tempPath().string(), dest.string());
    }
    f.commitNoReplace();
}

std::string nowIso() {
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    return buf;
}

std::string recordKey(const std::string& type, const std::string& run, const DataId& id) {
    return type + '\x1f' + run + '\x1f' + id.toString();
}

std::string typeToJson(const DatasetType& t) {
    std::string dims;
    for (Dimension d : t.dimensions) {
        if (!dims.empty()) dims += ' ';
        dims += dimensionName(d);
    }
    std::string s = "{";
    jsonField(s, "name", t.name);
    jsonField(s, "storageClass", storageClassName(t.storageClass));
    jsonField(s, "template", t.pathTemplate);
    jsonField(s, "dimensions", dims);
    return s + "}\n";
}

DatasetType typeFromJson(const std::string& text, const fs::path& file) {
    Json j;
    if (!parseJson(text, j) || !j.count("name") || !j.count("storageClass") || !j.count("template") ||
        !j.count("dimensions"))
        throw IoError("corrupt dataset type definition", file.string());
    DatasetType t;
    t.name = j["name"];
    t.storageClass = parseStorageClass(j["storageClass"]);
    t.pathTemplate = j["template"];
    std::istringstream dims(j["dimensions"]);
    for (std::string d; dims >> d;) t.dimensions.push_back(dimensionFromName(d));
    return t;
}

std::string recordToLine(const DatasetRecord& r) {
    std::string s = "{";
    jsonField(s, "type", r.datasetType);
    jsonField(s, "run", r.run);
    jsonField(s, "dataId", r.dataId.toString());
    jsonField(s, "path", r.relativePath);
    jsonField(s, "size", r.size);
    jsonField(s, "checksum", r.checksum);
    jsonField(s, "producer", r.producer);
    jsonField(s, "time", r.timestamp);
    std::string crc = checksum64Hex(s);
    s += ",\"crc\":\"" + crc + "\"}\n";
    return s;
}

/// Parse one manifest line (without its newline); false if torn or corrupt.
bool lineToRecord(const std::string& line, DatasetRecord& r) {
    static const std::string tag = ",\"crc\":\"";
    std::size_t pos = line.rfind(tag);
    if (pos == std::string::npos || line.size() != pos + tag.size() + 16 + 2 || line.compare(line.size() - 2, 2, "\"}"))
        return false;
    if (checksum64Hex(std::string_view(line).substr(0, pos)) != line.substr(pos + tag.size(), 16)) return false;
    Json j;
    if (!parseJson(line, j)) return false;
    for (const char* k : {"type", "run", "dataId", "path", "size", "checksum", "producer", "time"})
        if (!j.count(k)) return false;
    try {
        r.datasetType = j["type"];
        r.run = j["run"];
        r.dataId = DataId::parse(j["dataId"]);
        r.relativePath = j["path"];
        r.size = std::stoull(j["size"]);
        r.checksum = j["checksum"];
        r.producer = j["producer"];
        r.timestamp = j["time"];
    } catch (const std::exception&) {
        return false;
    }
    return true;
}

std::string writerName() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "host");
    for (char* p = host; *p; ++p)
        if (!std::isalnum(static_cast<unsigned char>(*p)) && *p != '-') *p = '_';
    std::random_device rd;
    char buf[400];
    std::snprintf(buf, sizeof buf, "%s-%ld-%08x%08x.jsonl", host, static_cast<long>(::getpid()), rd(), rd());
    return buf;
}

}  // namespace

const char* verifyStatusName(VerifyStatus s) {
    switch (s) {
        case VerifyStatus::Ok: return "ok";
        case VerifyStatus::Missing: return "missing";
        case VerifyStatus::SizeMismatch: return "size mismatch";
        case VerifyStatus::ChecksumMismatch: return "checksum mismatch";
    }
    return "?";
}

struct Repository::Impl {
    fs::path root;
    mutable std::mutex mutex;
    // Manifest index, refreshed incrementally from every manifest file.
    mutable std::unordered_map<std::string, DatasetRecord> index;
    mutable std::unordered_map<std::string, std::string> byPath;  // relative path -> index key
    mutable std::map<std::string, std::uint64_t> consumed;  // manifest file name -> bytes parsed
    mutable std::size_t corruptLines = 0;
    mutable std::size_t duplicateLines = 0;
    mutable std::map<std::string, DatasetType> types;  // cache of _types
    // This object's own manifest file.
    int writerFd = -1;
    fs::path writerPath;

    fs::path manifestDir() const { return root / "_manifest"; }
    fs::path typesDir() const { return root / "_types"; }
    fs::path runsDir() const { return root / "_runs"; }

    ~Impl() {
        if (writerFd >= 0) ::close(writerFd);
    }

    void refresh() const;  // caller holds mutex
    const DatasetType& type(const std::string& name) const;  // caller holds mutex
    void append(const std::string& line);                    // caller holds mutex
};

void Repository::Impl::refresh() const {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(manifestDir(), ec)) {
        const fs::path p = entry.path();
        if (p.extension() != ".jsonl" || AtomicFile::isTempName(p)) continue;
        const std::string name = p.filename().string();
        std::uint64_t& offset = consumed[name];
        std::error_code sec;
        auto size = fs::file_size(p, sec);
        if (sec || size <= offset) continue;
        std::ifstream in(p, std::ios::binary);
        if (!in) continue;
        in.seekg(static_cast<std::streamoff>(offset));
        std::string chunk(static_cast<std::size_t>(size - offset), '\0');
        in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        chunk.resize(static_cast<std::size_t>(in.gcount()));
        // Only whole lines; an unterminated tail (a write in flight, or torn by a crash) waits.
        std::size_t start = 0;
        for (std::size_t nl; (nl = chunk.find('\n', start)) != std::string::npos; start = nl + 1) {
            std::string line = chunk.substr(start, nl - start);
            if (line.empty()) continue;
            DatasetRecord r;
            if (!lineToRecord(line, r)) {
                ++corruptLines;
                DRP_LOG_WARN("repository", "ignoring a corrupt manifest line in " << p.string());
                continue;
            }
            std::string key = recordKey(r.datasetType, r.run, r.dataId);
            auto [it, inserted] = index.emplace(key, r);
            if (!inserted) ++duplicateLines;
            else byPath.emplace(r.relativePath, key);
        }
        offset += start;
    }
}

const DatasetType& Repository::Impl::type(const std::string& name) const {
    auto it = types.find(name);
    if (it != types.end()) return it->second;
    fs::path p = typesDir() / (name + ".json");
    std::error_code ec;
    bool safe = !name.empty() && name.find('/') == std::string::npos && name[0] != '.';
    if (!safe || !fs::exists(p, ec)) throw NotFoundError("dataset type '" + name + "' is not registered", root.string());
    return types.emplace(name, typeFromJson(readWholeFile(p), p)).first->second;
}

void Repository::Impl::append(const std::string& line) {
    if (writerFd < 0) {
        fs::path p = manifestDir() / writerName();
        int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) throw IoError(std::string("cannot create manifest file: ") + std::strerror(errno), p.string());
        writerFd = fd;
        writerPath = p;
    }
    std::size_t done = 0;
    while (done < line.size()) {
        ssize_t n = ::write(writerFd, line.data() + done, line.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw IoError(std::string("manifest append failed: ") + std::strerror(errno), writerPath.string());
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(writerFd) != 0)
        throw IoError(std::string("manifest fsync failed: ") + std::strerror(errno), writerPath.string());
}

Repository::Repository(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Repository::Repository(Repository&&) noexcept = default;
Repository& Repository::operator=(Repository&&) noexcept = default;
Repository::~Repository() = default;

Repository Repository::create(const fs::path& root) {
    std::error_code ec;
    for (const fs::path& d : {root, root / "_manifest", root / "_types", root / "_runs"}) {
        fs::create_directories(d, ec);
        if (ec) throw IoError("cannot create repository directory: " + ec.message(), d.string());
    }
    if (!fs::exists(root / kMarker)) {
        try {
            publishText(root / kMarker, kMarkerText);
        } catch (const ConflictError&) {
            // another process created it first: fine
        }
    }
    return open(root);
}

Repository Repository::open(const fs::path& root) {
    std::error_code ec;
    if (!fs::is_regular_file(root / kMarker, ec))
        throw NotFoundError("not a data repository (no " + std::string(kMarker) + ")", root.string());
    std::string marker = readWholeFile(root / kMarker);
    if (marker.find("\"drp-repo\"") == std::string::npos)
        throw IoError("unrecognised repository marker", (root / kMarker).string());
    for (const fs::path& d : {root / "_manifest", root / "_types", root / "_runs"})
        if (!fs::is_directory(d, ec)) throw IoError("repository is missing its directory", d.string());
    auto impl = std::make_unique<Impl>();
    impl->root = fs::absolute(root).lexically_normal();
    std::lock_guard lock(impl->mutex);
    impl->refresh();
    return Repository(std::move(impl));
}

const fs::path& Repository::root() const { return impl_->root; }

void Repository::registerDatasetType(const DatasetType& type) {
    type.validate();
    std::lock_guard lock(impl_->mutex);
    fs::path p = impl_->typesDir() / (type.name + ".json");
    auto compare = [&] {
        impl_->types.erase(type.name);
        const DatasetType& existing = impl_->type(type.name);
        if (!(existing == type))
            throw ConflictError("dataset type '" + type.name + "' is already registered with a different definition (" +
                                    existing.pathTemplate + ")",
                                p.string());
    };
    std::error_code ec;
    if (fs::exists(p, ec)) return compare();
    try {
        publishText(p, typeToJson(type));
        impl_->types[type.name] = type;
    } catch (const ConflictError&) {
        compare();  // a concurrent registration won: accept it if identical
    }
}

DatasetType Repository::datasetType(const std::string& name) const {
    std::lock_guard lock(impl_->mutex);
    return impl_->type(name);
}

bool Repository::hasDatasetType(const std::string& name) const {
    try {
        datasetType(name);
        return true;
    } catch (const NotFoundError&) {
        return false;
    }
}

std::vector<DatasetType> Repository::datasetTypes() const {
    std::lock_guard lock(impl_->mutex);
    std::vector<DatasetType> out;
    std::error_code ec;
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(impl_->typesDir(), ec))
        if (e.path().extension() == ".json" && !AtomicFile::isTempName(e.path()))
            names.push_back(e.path().stem().string());
    std::sort(names.begin(), names.end());
    for (const auto& n : names) out.push_back(impl_->type(n));
    return out;
}

void Repository::registerRun(const std::string& run) {
    validateRun(run);
    fs::path p = impl_->runsDir() / (encodeRun(run) + ".run");
    std::error_code ec;
    if (fs::exists(p, ec)) return;
    try {
        publishText(p, run + "\n");
    } catch (const ConflictError&) {
    }
}

std::vector<std::string> Repository::runs() const {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(impl_->runsDir(), ec))
        if (e.path().extension() == ".run" && !AtomicFile::isTempName(e.path()))
            out.insert(decodeRun(e.path().stem().string()));
    std::lock_guard lock(impl_->mutex);
    impl_->refresh();
    for (const auto& [k, r] : impl_->index) out.insert(r.run);
    return {out.begin(), out.end()};
}

Repository::PendingDataset::PendingDataset(Repository* repo, DatasetRecord record, fs::path destination)
    : repo_(repo), record_(std::move(record)), file_(std::move(destination)) {}
Repository::PendingDataset::PendingDataset(PendingDataset&&) noexcept = default;
Repository::PendingDataset& Repository::PendingDataset::operator=(PendingDataset&&) noexcept = default;
Repository::PendingDataset::~PendingDataset() = default;

DatasetRecord Repository::PendingDataset::commit() { return repo_->commitPending(*this); }

Repository::PendingDataset Repository::prepare(const std::string& datasetType, const std::string& run,
                                               const DataId& dataId, const std::string& producer) {
    validateRun(run);
    std::lock_guard lock(impl_->mutex);
    const DatasetType& type = impl_->type(datasetType);
    DataId id = dataId.subset(type.dimensions);
    for (Dimension d : type.dimensions)
        if (!id.has(d))
            throw LogicError("dataset type '" + datasetType + "' needs dimension '" + dimensionName(d) + "'", {},
                             dataId.toString());
    DatasetRecord r;
    r.datasetType = datasetType;
    r.run = run;
    r.dataId = id;
    r.relativePath = type.expand(run, id);
    r.producer = producer.empty() ? run : producer;
    impl_->refresh();
    if (impl_->index.count(recordKey(datasetType, run, id)))
        throw ConflictError("dataset '" + datasetType + "' in run '" + run + "' already exists", r.relativePath,
                            id.toString());
    if (auto other = impl_->byPath.find(r.relativePath); other != impl_->byPath.end()) {
        const DatasetRecord& o = impl_->index.at(other->second);
        throw ConflictError("the path of dataset '" + datasetType + "' in run '" + run + "' is already used by '" +
                                o.datasetType + "' " + o.dataId.toString() +
                                " (the path template leaves out a dimension that differs)",
                            r.relativePath, id.toString());
    }
    fs::path dest = impl_->root / r.relativePath;
    std::error_code ec;
    if (fs::exists(dest, ec))
        throw ConflictError("a file not recorded in the manifest already exists at the path of dataset '" +
                                datasetType + "' (left by an interrupted write? see orphanFiles())",
                            dest.string(), id.toString());
    fs::create_directories(dest.parent_path(), ec);
    if (ec) throw IoError("cannot create dataset directory: " + ec.message(), dest.parent_path().string(), id.toString());
    return PendingDataset(this, std::move(r), std::move(dest));
}

DatasetRecord Repository::commitPending(PendingDataset& pending) {
    DatasetRecord r = pending.record_;
    const fs::path& temp = pending.file_.tempPath();
    std::error_code ec;
    if (!fs::is_regular_file(temp, ec))
        throw IoError("nothing was written for dataset '" + r.datasetType + "'", pending.path().string(),
                      r.dataId.toString());
    r.size = fs::file_size(temp, ec);
    if (ec) throw IoError("cannot stat " + temp.string() + ": " + ec.message(), pending.path().string());
    r.checksum = Checksum::ofFile(temp).hex();
    try {
        pending.file_.commitNoReplace();
    } catch (const ConflictError&) {
        throw ConflictError("dataset '" + r.datasetType + "' in run '" + r.run + "' was published by another writer",
                            pending.path().string(), r.dataId.toString());
    }
    r.timestamp = nowIso();
    std::lock_guard lock(impl_->mutex);
    try {
        impl_->append(recordToLine(r));
    } catch (...) {
        fs::remove(pending.path(), ec);  // not recorded: do not leave it looking like a dataset
        throw;
    }
    impl_->refresh();
    return r;
}

DatasetRecord Repository::put(const std::string& datasetType, const std::string& run, const DataId& dataId,
                              const std::function<void(const fs::path&)>& writer, const std::string& producer) {
    PendingDataset p = prepare(datasetType, run, dataId, producer);
    writer(p.tempPath());
    return p.commit();
}

DatasetRecord Repository::putBytes(const std::string& datasetType, const std::string& run, const DataId& dataId,
                                   const std::string& bytes, const std::string& producer) {
    return put(
        datasetType, run, dataId,
        [&](const fs::path& tmp) {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
            out.close();
            if (!out) throw IoError("cannot write", tmp.string(), dataId.toString());
        },
        producer);
}

std::optional<DatasetRecord> Repository::find(const std::string& datasetType, const std::string& run,
                                              const DataId& dataId) const {
    std::lock_guard lock(impl_->mutex);
    DataId id = dataId;
    try {
        id = dataId.subset(impl_->type(datasetType).dimensions);
    } catch (const NotFoundError&) {
    }
    impl_->refresh();
    auto it = impl_->index.find(recordKey(datasetType, run, id));
    if (it == impl_->index.end()) return std::nullopt;
    return it->second;
}

bool Repository::exists(const std::string& datasetType, const std::string& run, const DataId& dataId) const {
    return find(datasetType, run, dataId).has_value();
}

fs::path Repository::getPath(const std::string& datasetType, const std::string& run, const DataId& dataId) const {
    auto r = find(datasetType, run, dataId);
    if (!r)
        throw NotFoundError("no dataset '" + datasetType + "' in run '" + run + "'", impl_->root.string(),
                            dataId.toString());
    return impl_->root / r->relativePath;
}

std::vector<DatasetRecord> Repository::query(const DatasetQuery& q) const {
    std::lock_guard lock(impl_->mutex);
    impl_->refresh();
    std::vector<DatasetRecord> out;
    for (const auto& [k, r] : impl_->index) {
        if (q.datasetType && r.datasetType != *q.datasetType) continue;
        if (q.run && r.run != *q.run) continue;
        if (!r.dataId.matches(q.dataId)) continue;
        out.push_back(r);
    }
    std::sort(out.begin(), out.end(), [](const DatasetRecord& a, const DatasetRecord& b) {
        if (a.datasetType != b.datasetType) return a.datasetType < b.datasetType;
        if (a.run != b.run) return a.run < b.run;
        return a.dataId < b.dataId;
    });
    return out;
}

VerifyStatus Repository::verify(const DatasetRecord& record) const {
    fs::path p = impl_->root / record.relativePath;
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) return VerifyStatus::Missing;
    auto size = fs::file_size(p, ec);
    if (ec) return VerifyStatus::Missing;
    if (size != record.size) return VerifyStatus::SizeMismatch;
    try {
        if (Checksum::ofFile(p).hex() != record.checksum) return VerifyStatus::ChecksumMismatch;
    } catch (const IoError&) {
        return VerifyStatus::Missing;
    }
    return VerifyStatus::Ok;
}

VerifyStatus Repository::verify(const std::string& datasetType, const std::string& run, const DataId& dataId) const {
    auto r = find(datasetType, run, dataId);
    if (!r)
        throw NotFoundError("no dataset '" + datasetType + "' in run '" + run + "'", impl_->root.string(),
                            dataId.toString());
    return verify(*r);
}

std::vector<std::string> Repository::orphanFiles() const {
    std::set<std::string> recorded;
    {
        std::lock_guard lock(impl_->mutex);
        impl_->refresh();
        for (const auto& [k, r] : impl_->index) recorded.insert(fs::path(r.relativePath).lexically_normal().string());
    }
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& top : fs::directory_iterator(impl_->root, ec)) {
        const std::string name = top.path().filename().string();
        if (name == kMarker || name.empty() || name[0] == '_' || name[0] == '.') continue;
        if (!top.is_directory()) {
            out.push_back(name);
            continue;
        }
        for (auto it = fs::recursive_directory_iterator(top.path(), ec); it != fs::recursive_directory_iterator();
             it.increment(ec)) {
            if (ec) break;
            if (!it->is_regular_file() || AtomicFile::isTempName(it->path())) continue;
            std::string rel = it->path().lexically_relative(impl_->root).lexically_normal().string();
            if (!recorded.count(rel)) out.push_back(rel);
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

Repository::Stats Repository::stats() const {
    std::lock_guard lock(impl_->mutex);
    impl_->refresh();
    Stats s;
    s.datasets = impl_->index.size();
    s.manifestFiles = impl_->consumed.size();
    s.corruptLines = impl_->corruptLines;
    s.duplicateLines = impl_->duplicateLines;
    return s;
}

}  // namespace drp
