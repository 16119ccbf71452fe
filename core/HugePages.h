// HugePages: large memory blocks mapped for pixel planes: zero-filled blocks on transparent huge pages (THP),
// for a process that asks for them, and uniform blocks (one value repeated) that share a few physical pages.
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
// Memory: the mapping is `bytes` rounded up to 4 KiB (the alignment slack is unmapped again), so a block
// never holds more than new[] would; only whole 2 MiB-aligned stretches inside it can become huge pages.
//
// Uniform blocks: a plane that starts as one value (the variance of an image without a weight map) is a
// private mapping, repeated over the block, of one small memory file (memfd) holding the value: every page
// reads the value from the same kUniformChunkBytes of physical memory (they stay in the cache) until it is
// written, when the kernel copies it (copy-on-write). Reading a whole untouched 65 MB plane takes ~1,000 page
// faults (the kernel maps 16 pages of a file per fault) and ~4 ms, where an ordinary plane is filled with
// 16,000 faults and ~30 ms (measured on the 2-core Firecracker VM); but writing a page costs about twice an
// ordinary fault (~3 us: a copy instead of a zero-fill), so only planes that are mostly read should be uniform.
// The pages count in the resident set as shared file memory (RssShmem) once mapped, though they are the
// same few physical pages.
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

/// The process-wide choice of huge pages for blocks allocated from now on (default false). A driver sets it
/// from its command line, once, before the work starts; library code only reads it.
void setTransparentHugePages(bool enabled);
bool transparentHugePages();

/// `bytes` (> 0) bytes in an anonymous mapping of its own whose start is aligned to kHugePageBytes, with
/// transparent huge pages requested if transparentHugePages(); zero-filled (a new mapping), and unmapped when
/// the last owner drops it. Throws std::bad_alloc when the mapping cannot be made, LogicError for bytes == 0.
std::shared_ptr<std::byte[]> allocateHugePageBlock(std::size_t bytes);

/// Uniform blocks below this size are not worth their mappings (the caller fills ordinary memory).
inline constexpr std::size_t kUniformMinBlockBytes = std::size_t(4) << 20;
/// The size of the memory file behind a uniform block (larger for blocks of more than 1024 of these).
inline constexpr std::size_t kUniformChunkBytes = std::size_t(256) << 10;

/// `bytes` (> 0) bytes that read as `pattern` (`patternBytes` bytes, a divisor of 4096) repeated from the
/// start, writable, each page copied on its first write (see the header comment); unmapped when the last owner
/// drops it. nullptr where such a block cannot be made (no memfd_create, or a mapping refused): the caller then
/// fills ordinary memory. Throws LogicError for bytes == 0 or a pattern size that does not divide 4096.
std::shared_ptr<std::byte[]> allocateUniformBlock(std::size_t bytes, const void* pattern, std::size_t patternBytes);

}  // namespace drp
