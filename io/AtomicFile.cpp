#include "io/AtomicFile.h"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "core/Error.h"

namespace drp {

namespace {

std::atomic<unsigned long> gCounter{0};

unsigned nonce() {
    static const unsigned base = [] {
        std::random_device rd;
        return static_cast<unsigned>(rd());
    }();
    return base;
}

std::string errnoText(int e) { return std::strerror(e); }

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path destination) : destination_(std::move(destination)) {
    if (destination_.filename().empty())
        throw IoError("AtomicFile: destination has no file name", destination_.string());
    char suffix[96];
    std::snprintf(suffix, sizeof suffix, ".tmp.%ld.%lu.%08x", static_cast<long>(::getpid()),
                  gCounter.fetch_add(1), nonce());
    std::string name(1, '.');
    name += destination_.filename().string();
    name += suffix;
    temp_ = destination_.parent_path() / name;
}

AtomicFile::~AtomicFile() { discard(); }

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : destination_(std::move(other.destination_)), temp_(std::move(other.temp_)), committed_(other.committed_) {
    other.committed_ = true;  // the moved-from object owns nothing
    other.temp_.clear();
}

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
    if (this != &other) {
        discard();
        destination_ = std::move(other.destination_);
        temp_ = std::move(other.temp_);
        committed_ = other.committed_;
        other.committed_ = true;
        other.temp_.clear();
    }
    return *this;
}

void AtomicFile::discard() noexcept {
    if (committed_ || temp_.empty()) return;
    std::error_code ec;
    std::filesystem::remove(temp_, ec);
}

void AtomicFile::syncTemp() {
    if (committed_) throw IoError("AtomicFile: already committed", destination_.string());
    int fd = ::open(temp_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            throw IoError("AtomicFile: nothing was written to the temp file " + temp_.string(),
                          destination_.string());
        throw IoError("AtomicFile: cannot open temp file " + temp_.string() + ": " + errnoText(e),
                      destination_.string());
    }
    struct stat st {};
    if (::fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw IoError("AtomicFile: temp path is not a regular file", destination_.string());
    }
    if (::fsync(fd) != 0) {
        int e = errno;
        ::close(fd);
        throw IoError("AtomicFile: fsync failed: " + errnoText(e), destination_.string());
    }
    ::close(fd);
}

void AtomicFile::syncDirectory() {
    std::filesystem::path dir = destination_.parent_path();
    if (dir.empty()) dir = ".";
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;  // the rename is done; a directory we cannot open cannot be synced
    ::fsync(fd);
    ::close(fd);
}

void AtomicFile::commit() {
    syncTemp();
    if (::rename(temp_.c_str(), destination_.c_str()) != 0)
        throw IoError("AtomicFile: rename from " + temp_.string() + " failed: " + errnoText(errno),
                      destination_.string());
    committed_ = true;
    syncDirectory();
}

void AtomicFile::commitNoReplace() {
    syncTemp();
    if (::link(temp_.c_str(), destination_.c_str()) == 0) {
        committed_ = true;
        ::unlink(temp_.c_str());
        syncDirectory();
        return;
    }
    int e = errno;
    if (e == EEXIST) throw ConflictError("AtomicFile: destination already exists", destination_.string());
    if (e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == EMLINK || e == ENOSYS) {
        // File systems without hard links: fall back to an atomic no-replace rename.
        if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, destination_.c_str(), RENAME_NOREPLACE) == 0) {
            committed_ = true;
            syncDirectory();
            return;
        }
        e = errno;
        if (e == EEXIST) throw ConflictError("AtomicFile: destination already exists", destination_.string());
    }
    throw IoError("AtomicFile: cannot publish " + temp_.string() + ": " + errnoText(e), destination_.string());
}

bool AtomicFile::isTempName(const std::filesystem::path& path) {
    const std::string name = path.filename().string();
    return name.size() > 1 && name[0] == '.' && name.find(".tmp.") != std::string::npos;
}

}  // namespace drp
