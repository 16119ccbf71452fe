// HugePages: large zero-filled memory blocks on transparent huge pages (THP), for a process that asks for them.
//
// A full-size pixel plane (16 Mpix, 65 MB) from malloc is a mapping of its own (above glibc's mmap
// threshold), faulted in 4 KiB at a time: ~16,000 page faults per plane, again for every plane, since the
// mapping goes back to the kernel at free. Image uses these blocks instead only when huge pages are asked for.
//
// With setTransparentHugePages(true) a block starts on a 2 MiB boundary and asks for huge pages (madvise
// MADV_HUGEPAGE, what THP's common "madvise" mode waits for): ~32 faults per plane, and the TLB covers it
// with 32 entries. Off by default, because whether it pays depends on the machine: where the memory is
// backed (bare metal, or a VM reusing what it just freed) a 65 MB plane costs 6 ms instead of 42 ms to
// fault in; but in a VM whose balloon reports free 2 MiB blocks to the host (virtio-balloon free page
// reporting at order 9, as on the Firecracker VMs this was measured on) a huge page is nearly always one
// the host has discarded, and faulting it in costs more than the 4 KiB pages the guest has at hand
// (measure-image 1 s after the previous run: 0.56 s system time instead of 0.21 s; 0.05-0.09 s when the
// pages happen to be warm). Enable it with `drp measure-image --huge-pages`.
//
// Reuse, inside a FreedBlockReuse scope: the block freed last is kept (one block per process) and handed
// to the next request of the same mapped length instead of a new mapping, so a plane allocated again and
// again (the detection's smoothed image, once per detection pass) is faulted in once. A request of another
// length unmaps the kept block first, and so does the end of the outermost scope. Opt-in, because a kept
// block stays resident while the code between the free and the next request allocates other memory, which
// can raise the peak (measured with every plane a block and the whole of measure-image in one scope:
// 16,000 fewer page faults, 89,800 -> 73,900, but a peak 4 MB higher, 280.4 MB instead of 276.3 MB, since
// its measurement runs while the smoothed image of the final detection is kept).
//
// Memory: the mapping is `bytes` rounded up to 4 KiB (the alignment slack is unmapped again), so a block
// never holds more than new[] would; only whole 2 MiB-aligned stretches inside it can become huge pages.
#pragma once

#include <cstddef>
#include <memory>

namespace drp {

/// Size of a transparent huge page on x86-64 (and the alignment of every block).
inline constexpr std::size_t kHugePageBytes = std::size_t(2) << 20;

/// With huge pages asked for, images at least this large are blocks: glibc's largest mmap threshold, so
/// arrays malloc would usually map on their own anyway; smaller ones stay on the heap, which reuses freed
/// memory without new page faults. (Without huge pages Image keeps to malloc/calloc for every size: glibc
/// also serves large requests from freed heap memory, and process-visit took 16,000 more page faults when
/// every 32 MiB+ image was a block of its own.)
inline constexpr std::size_t kHugePageMinBlockBytes = std::size_t(32) << 20;

/// While at least one of these lives, freed blocks are kept for reuse (see the header comment); when the last
/// one ends, the kept block is unmapped. Not copyable; nest freely.
class FreedBlockReuse {
public:
    FreedBlockReuse();
    ~FreedBlockReuse();
    FreedBlockReuse(const FreedBlockReuse&) = delete;
    FreedBlockReuse& operator=(const FreedBlockReuse&) = delete;
};

/// The process-wide choice of huge pages for blocks allocated from now on (default false). A driver sets it
/// from its command line, once, before the work starts; library code only reads it.
void setTransparentHugePages(bool enabled);
bool transparentHugePages();

/// `bytes` (> 0) bytes in an anonymous mapping of its own whose start is aligned to kHugePageBytes, with
/// transparent huge pages requested if transparentHugePages() (or the kept freed block of that length, inside
/// a FreedBlockReuse scope). With
/// `zeroed` null the memory is zero-filled; otherwise *zeroed tells whether it is (a new mapping is, a reused
/// block holds what its last owner left) and the caller fills it. The block is unmapped (or kept for reuse,
/// see above) when the last owner drops it. Throws std::bad_alloc when the mapping cannot be made, LogicError
/// for bytes == 0.
std::shared_ptr<std::byte[]> allocateHugePageBlock(std::size_t bytes, bool* zeroed = nullptr);

}  // namespace drp
