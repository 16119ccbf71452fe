#include "core/HugePages.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <new>

#include "core/Error.h"

namespace drp {

namespace {

std::size_t roundUp(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

std::size_t systemPageBytes() {
    static const std::size_t page = [] {
        const long p = ::sysconf(_SC_PAGESIZE);
        return p > 0 ? std::size_t(p) : std::size_t(4096);
    }();
    return page;
}

std::atomic<bool> gHugePages{false};

/// A new anonymous mapping of `length` (a multiple of the page size) bytes starting on a huge-page boundary.
std::byte* mapAligned(std::size_t length) {
    const std::size_t page = systemPageBytes();
    // Map enough to contain an aligned start, then give back the slack before and after it.
    const std::size_t slack = kHugePageBytes - page;
    if (length > SIZE_MAX - slack) throw std::bad_alloc();
    void* raw = ::mmap(nullptr, length + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const auto base = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t start = roundUp(base, kHugePageBytes);
    if (start > base) ::munmap(raw, start - base);
    const std::uintptr_t end = start + length, mappedEnd = base + length + slack;
    if (mappedEnd > end) ::munmap(reinterpret_cast<void*>(end), mappedEnd - end);
    auto* p = reinterpret_cast<std::byte*>(start);
#ifdef MADV_HUGEPAGE
    if (transparentHugePages()) ::madvise(p, length, MADV_HUGEPAGE);  // advice only: without THP, 4 KiB pages
#endif
    return p;
}

}  // namespace

void setTransparentHugePages(bool enabled) { gHugePages.store(enabled, std::memory_order_relaxed); }

bool transparentHugePages() { return gHugePages.load(std::memory_order_relaxed); }

std::shared_ptr<std::byte[]> allocateHugePageBlock(std::size_t bytes) {
    if (bytes == 0) throw LogicError("allocateHugePageBlock: zero bytes");
    const std::size_t length = roundUp(bytes, systemPageBytes());
    std::byte* p = mapAligned(length);
    return std::shared_ptr<std::byte[]>(p, [length](std::byte* q) { ::munmap(q, length); });
}

std::shared_ptr<std::byte[]> allocateUniformBlock(std::size_t bytes, const void* pattern, std::size_t patternBytes) {
    if (bytes == 0) throw LogicError("allocateUniformBlock: zero bytes");
    if (patternBytes == 0 || 4096 % patternBytes != 0)
        throw LogicError("allocateUniformBlock: the pattern size must divide 4096, not " + std::to_string(patternBytes));
#ifdef MFD_CLOEXEC
    const std::size_t page = systemPageBytes();
    if (page % 4096 != 0) return nullptr;
    // At most kMaxChunks mappings per block (each is a kernel VMA; the default limit is 65,530 per process).
    constexpr std::size_t kMaxChunks = 1024;
    std::size_t chunk = kUniformChunkBytes;
    if (bytes / chunk >= kMaxChunks) chunk = roundUp(bytes / kMaxChunks + 1, page);
    const std::size_t count = (bytes + chunk - 1) / chunk;
    if (count > SIZE_MAX / chunk) throw std::bad_alloc();
    const std::size_t length = count * chunk;
    const int fd = ::memfd_create("drp-uniform", MFD_CLOEXEC);
    if (fd < 0) return nullptr;
    // The memory file: `chunk` bytes of the pattern, one page of it written again and again.
    alignas(64) std::byte pagePattern[4096];
    for (std::size_t o = 0; o < sizeof pagePattern; o += patternBytes) std::memcpy(pagePattern + o, pattern, patternBytes);
    bool ok = true;
    for (std::size_t o = 0; ok && o < chunk; o += sizeof pagePattern)
        ok = ::pwrite(fd, pagePattern, sizeof pagePattern, off_t(o)) == ssize_t(sizeof pagePattern);
    // The address range, reserved at once, then the file mapped privately over each chunk of it.
    void* range = ok ? ::mmap(nullptr, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) : MAP_FAILED;
    ok = range != MAP_FAILED;
    auto* p = static_cast<std::byte*>(range);
    for (std::size_t o = 0; ok && o < length; o += chunk)
        ok = ::mmap(p + o, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0) != MAP_FAILED;
    ::close(fd);  // the mappings keep the file
    if (!ok) {
        if (range != MAP_FAILED) ::munmap(range, length);
        return nullptr;
    }
    return std::shared_ptr<std::byte[]>(p, [length](std::byte* q) { ::munmap(q, length); });
#else
    (void)pattern;
    return nullptr;
#endif
}

}  // namespace drp
