#include "io/PngWriter.h"

#include <array>
#include <fstream>
#include <string>

#include "core/Error.h"
#include "io/AtomicFile.h"

namespace drp {

namespace {

const std::array<std::uint32_t, 256>& crcTable() {
    static const std::array<std::uint32_t, 256> table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t n = 0; n < 256; ++n) {
            std::uint32_t c = n;
            for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }();
    return table;
}

void put32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    out.push_back(std::uint8_t(v >> 24));
    out.push_back(std::uint8_t(v >> 16));
    out.push_back(std::uint8_t(v >> 8));
    out.push_back(std::uint8_t(v));
}

void putChunk(std::vector<std::uint8_t>& out, const char type[4], std::span<const std::uint8_t> data) {
    put32(out, std::uint32_t(data.size()));
    const std::size_t start = out.size();
    out.insert(out.end(), type, type + 4);
    out.insert(out.end(), data.begin(), data.end());
    put32(out, crc32Png(std::span<const std::uint8_t>(out.data() + start, out.size() - start)));
}

}  // namespace

std::uint32_t crc32Png(std::span<const std::uint8_t> data, std::uint32_t crc) {
    const auto& t = crcTable();
    std::uint32_t c = crc ^ 0xFFFFFFFFu;
    for (std::uint8_t b : data) c = t[(c ^ b) & 0xFFu] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

std::uint32_t adler32(std::span<const std::uint8_t> data, std::uint32_t adler) {
    std::uint32_t a = adler & 0xFFFFu, b = adler >> 16;
    std::size_t i = 0;
    while (i < data.size()) {
        const std::size_t n = std::min<std::size_t>(5552, data.size() - i);  // no overflow before the modulo
        for (std::size_t k = 0; k < n; ++k) {
            a += data[i + k];
            b += a;
        }
        a %= 65521u;
        b %= 65521u;
        i += n;
    }
    return (b << 16) | a;
}

std::vector<std::uint8_t> encodePng(int width, int height, int channels, std::span<const std::uint8_t> pixels) {
    if (width <= 0 || height <= 0 || width > (1 << 24) || height > (1 << 24))
        throw InvalidInputError("encodePng: bad dimensions " + std::to_string(width) + "x" + std::to_string(height));
    if (channels != 1 && channels != 3 && channels != 4)
        throw InvalidInputError("encodePng: channels must be 1, 3 or 4");
    const std::size_t rowBytes = std::size_t(width) * std::size_t(channels);
    if (pixels.size() != rowBytes * std::size_t(height))
        throw InvalidInputError("encodePng: pixel buffer has " + std::to_string(pixels.size()) + " bytes, expected " +
                                std::to_string(rowBytes * std::size_t(height)));
    // Raw scanlines with filter byte 0.
    std::vector<std::uint8_t> raw;
    raw.reserve((rowBytes + 1) * std::size_t(height));
    for (int y = 0; y < height; ++y) {
        raw.push_back(0);
        const auto* row = pixels.data() + std::size_t(y) * rowBytes;
        raw.insert(raw.end(), row, row + rowBytes);
    }
    // zlib stream of stored blocks.
    std::vector<std::uint8_t> z;
    z.reserve(raw.size() + raw.size() / 65535 * 5 + 16);
    z.push_back(0x78);
    z.push_back(0x01);
    std::size_t pos = 0;
    do {
        const std::size_t n = std::min<std::size_t>(65535, raw.size() - pos);
        const bool last = pos + n == raw.size();
        z.push_back(last ? 1 : 0);
        z.push_back(std::uint8_t(n & 0xFF));
        z.push_back(std::uint8_t(n >> 8));
        z.push_back(std::uint8_t(~n & 0xFF));
        z.push_back(std::uint8_t((~n >> 8) & 0xFF));
        z.insert(z.end(), raw.begin() + std::ptrdiff_t(pos), raw.begin() + std::ptrdiff_t(pos + n));
        pos += n;
    } while (pos < raw.size());
    put32(z, adler32(raw));

    std::vector<std::uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    std::vector<std::uint8_t> ihdr;
    put32(ihdr, std::uint32_t(width));
    put32(ihdr, std::uint32_t(height));
    ihdr.push_back(8);
    ihdr.push_back(std::uint8_t(channels == 1 ? 0 : channels == 3 ? 2 : 6));
    ihdr.push_back(0);
    ihdr.push_back(0);
    ihdr.push_back(0);
    putChunk(out, "IHDR", ihdr);
    putChunk(out, "IDAT", z);
    putChunk(out, "IEND", {});
    return out;
}

void writePng(const std::filesystem::path& path, int width, int height, int channels,
              std::span<const std::uint8_t> pixels) {
    const std::vector<std::uint8_t> bytes = encodePng(width, height, channels, pixels);
    AtomicFile file(path);
    {
        std::ofstream os(file.tempPath(), std::ios::binary);
        os.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        os.close();
        if (!os) throw IoError("cannot write PNG", path.string());
    }
    file.commit();
}

}  // namespace drp
