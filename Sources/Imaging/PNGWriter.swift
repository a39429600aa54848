import CZlib
import Foundation

/// A minimal, standard PNG writer (RFC 2083 / ISO 15948) for the mixing visualisations: 8-bit grey or
/// RGB, no interlace, filter type 0 (None) on every row, one IDAT compressed by zlib's `compress2`
/// (which writes the zlib wrapper PNG requires), CRC-32 from zlib. Small and dependency-free beyond zlib,
/// and any decoder (libpng's `pngfix`, browsers) reads it.
public enum PNGImage {
    public struct EncodeError: Error, CustomStringConvertible {
        public let description: String
    }

    /// IDAT payload limit: any size up to 2³¹−1 is legal; modest chunks suit streaming decoders.
    public static let idatChunkSize = 1 << 18

    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Encodes row-major pixels (`channels` = 1 grey or 3 RGB, one byte per sample) to PNG bytes.
    public static func encode(pixels: [UInt8], width: Int, height: Int, channels: Int) throws -> [UInt8] {
        guard channels == 1 || channels == 3 else { throw EncodeError(description: "PNG: channels must be 1 or 3, not \(channels)") }
        guard width > 0, height > 0, width < 1 << 31, height < 1 << 31 else {
            throw EncodeError(description: "PNG: bad size \(width)×\(height)")
        }
        let stride = width * channels
        guard pixels.count == stride * height else {
            throw EncodeError(description: "PNG: \(pixels.count) bytes for \(width)×\(height)×\(channels)")
        }
        // Scanlines: each row prefixed with its filter type byte (0 = None).
        var raw = [UInt8](repeating: 0, count: (stride + 1) * height)
        pixels.withUnsafeBufferPointer { src in
            raw.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    (dst.baseAddress! + y * (stride + 1) + 1).update(from: src.baseAddress! + y * stride, count: stride)
                }
            }
        }
        var bound = compressBound(uLong(raw.count))
        var deflated = [UInt8](repeating: 0, count: Int(bound))
        let rc = compress2(&deflated, &bound, raw, uLong(raw.count), 9)
        guard rc == Z_OK else { throw EncodeError(description: "PNG: zlib compress2 failed (\(rc))") }
        deflated.removeSubrange(Int(bound)...)

        var out = signature
        var ihdr: [UInt8] = []
        appendUInt32(&ihdr, UInt32(width))
        appendUInt32(&ihdr, UInt32(height))
        // bit depth 8; colour type 0 (grey) or 2 (RGB); compression 0; filter method 0; no interlace.
        ihdr += [8, channels == 3 ? 2 : 0, 0, 0, 0]
        appendChunk(&out, "IHDR", ihdr)
        // The zlib stream split over IDAT chunks of at most `idatChunkSize` bytes (decoders concatenate them).
        var at = 0
        repeat {
            let end = min(deflated.count, at + idatChunkSize)
            appendChunk(&out, "IDAT", Array(deflated[at..<end]))
            at = end
        } while at < deflated.count
        appendChunk(&out, "IEND", [])
        return out
    }

    /// Encodes and writes a PNG file.
    public static func write(pixels: [UInt8], width: Int, height: Int, channels: Int, to path: String) throws {
        let bytes = try encode(pixels: pixels, width: width, height: height, channels: channels)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func appendUInt32(_ out: inout [UInt8], _ v: UInt32) {
        out += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }

    /// length (big-endian, data only) | type | data | CRC-32 of type + data.
    static func appendChunk(_ out: inout [UInt8], _ type: String, _ data: [UInt8]) {
        let typeBytes = Array(type.utf8)
        precondition(typeBytes.count == 4)
        appendUInt32(&out, UInt32(data.count))
        let body = typeBytes + data
        out += body
        let crc = body.withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
        appendUInt32(&out, UInt32(crc))
    }
}
