// PngWriter: a dependency-free PNG encoder for 8-bit greyscale, RGB and RGBA images (survey property
// maps, quick looks). The zlib stream uses stored (uncompressed) deflate blocks, so it needs only the
// CRC-32 of each chunk and the Adler-32 of the data: no zlib. Every PNG reader decodes it; files are
// about the raw size (a 3000 x 3000 grey map: 9 MB).
//
// Layout: signature, IHDR (bit depth 8, colour type 0 / 2 / 6, no interlace), one IDAT holding the
// zlib stream (header 0x78 0x01, stored blocks of at most 65535 bytes, Adler-32), IEND. Each scanline
// starts with filter type 0 (None). Rows are top first.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

namespace drp {

/// CRC-32 (ISO 3309 / PNG) of `data`, continuing from `crc` (0 to start).
std::uint32_t crc32Png(std::span<const std::uint8_t> data, std::uint32_t crc = 0);
/// Adler-32 (RFC 1950) of `data`, continuing from `adler` (1 to start).
std::uint32_t adler32(std::span<const std::uint8_t> data, std::uint32_t adler = 1);

/// The PNG file bytes of a width x height image with `channels` (1 grey, 3 RGB, 4 RGBA) 8-bit samples
/// per pixel, rows top first. Throws InvalidInputError for bad dimensions or a pixel buffer of the
/// wrong size.
std::vector<std::uint8_t> encodePng(int width, int height, int channels, std::span<const std::uint8_t> pixels);

/// Encode and write to `path` atomically (io/AtomicFile.h). Throws IoError on failure.
void writePng(const std::filesystem::path& path, int width, int height, int channels,
              std::span<const std::uint8_t> pixels);

}  // namespace drp
