#include "core/HugePages.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <utility>

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

// The one freed block kept for reuse (see the header): its start and mapped length.
struct FreeBlock {
    std::byte* p = nullptr;
    std::size_t length = 0;
};
std::mutex gFreeMutex;
FreeBlock gFree;

FreeBlock takeFreeBlock() {
    std::lock_guard<std::mutex> lock(gFreeMutex);
    return std::exchange(gFree, FreeBlock{});
}

int gReuseScopes = 0;  // live FreedBlockReuse objects (guarded by gFreeMutex)

/// The deleter: inside a FreedBlockReuse scope keep the block for the next allocation (unmapping the one
/// kept before), else unmap it.
void releaseBlock(std::byte* p, std::size_t length) {
    FreeBlock old{p, length};
    {
        std::lock_guard<std::mutex> lock(gFreeMutex);
        if (gReuseScopes > 0) old = std::exchange(gFree, old);
    }
    if (old.p) ::munmap(old.p, old.length);
}

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

FreedBlockReuse::FreedBlockReuse() {
    std::lock_guard<std::mutex> lock(gFreeMutex);
    ++gReuseScopes;
}

FreedBlockReuse::~FreedBlockReuse() {
    FreeBlock old;
    {
        std::lock_guard<std::mutex> lock(gFreeMutex);
        if (--gReuseScopes == 0) old = std::exchange(gFree, FreeBlock{});
    }
    if (old.p) ::munmap(old.p, old.length);
}

void setTransparentHugePages(bool enabled) { gHugePages.store(enabled, std::memory_order_relaxed); }

bool transparentHugePages() { return gHugePages.load(std::memory_order_relaxed); }

std::shared_ptr<std::byte[]> allocateHugePageBlock(std::size_t bytes, bool* zeroed) {
    if (bytes == 0) throw LogicError("allocateHugePageBlock: zero bytes");
    const std::size_t length = roundUp(bytes, systemPageBytes());
    FreeBlock kept = takeFreeBlock();
    std::byte* p = nullptr;
    bool fresh = true;
    if (kept.p && kept.length == length) {
        p = kept.p;
        fresh = false;
    } else {
        // Another size: the kept block goes back to the kernel before the new mapping is made.
        if (kept.p) ::munmap(kept.p, kept.length);
        p = mapAligned(length);
    }
    if (zeroed) {
        *zeroed = fresh;
    } else if (!fresh) {
        std::memset(p, 0, length);
    }
    return std::shared_ptr<std::byte[]>(p, [length](std::byte* q) { releaseBlock(q, length); });
}

}  // namespace drp
