import CZlib

/// A minimal PNG reader for image folders (ImageNet has a few PNGs named .JPEG): non-interlaced,
/// 8- or 16-bit grey, grey+alpha, RGB, RGBA and 8-bit palette images, converted to packed RGB. Alpha is
/// dropped, as Pillow's `convert("RGB")` does; 16-bit samples keep their high byte. Anything else is
/// reported as a bad image with the reason.
enum PNGDecoder {
    static func isPNG(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let sig: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        return bytes.count >= 8 && (0..<8).allSatisfy { bytes[$0] == sig[$0] }
    }

    struct Header {
        var width = 0, height = 0, bitDepth = 0, colorType = 0
        var channels: Int {
            switch colorType { case 0, 3: 1; case 4: 2; case 2: 3; default: 4 }
        }
    }

    static func header(_ bytes: UnsafeRawBufferPointer) throws -> Header {
        guard bytes.count >= 33, be32(bytes, 12) == 0x4948_4452 else { throw DecodeFailure("corrupt PNG (no IHDR)") }
        var h = Header()
        h.width = Int(be32(bytes, 16))
        h.height = Int(be32(bytes, 20))
        h.bitDepth = Int(bytes[24])
        h.colorType = Int(bytes[25])
        guard h.width > 0, h.height > 0, h.width < 1 << 16, h.height < 1 << 16 else {
            throw DecodeFailure("corrupt PNG (size \(h.width)×\(h.height))")
        }
        guard [0, 2, 3, 4, 6].contains(h.colorType) else { throw DecodeFailure("corrupt PNG (color type \(h.colorType))") }
        guard h.bitDepth == 8 || (h.bitDepth == 16 && h.colorType != 3) else {
            throw DecodeFailure("unsupported PNG: \(h.bitDepth)-bit samples (8 and 16 are read)")
        }
        guard bytes[28] == 0 else { throw DecodeFailure("unsupported PNG: interlaced (Adam7); re-save it without interlacing") }
        return h
    }

    /// Decodes to packed RGB (`width·height·3` bytes in `rgb`). `work` holds the compressed and the
    /// filtered data.
    static func decode(_ bytes: UnsafeRawBufferPointer, header h: Header, into rgb: Scratch<UInt8>,
                       work: Scratch<UInt8>) throws -> UnsafeMutablePointer<UInt8> {
        // Gather the IDAT chunks and the palette.
        var palette: [UInt8] = []
        var idat: [(Int, Int)] = []
        var pos = 8, total = 0
        while pos + 8 <= bytes.count {
            let len = Int(be32(bytes, pos)), type = be32(bytes, pos + 4)
            guard len >= 0, pos + 12 + len <= bytes.count else { throw DecodeFailure("truncated PNG") }
            if type == 0x4944_4154 { idat.append((pos + 8, len)); total += len }             // IDAT
            else if type == 0x504C_5445 { palette = Array(bytes[(pos + 8)..<(pos + 8 + len)]) } // PLTE
            else if type == 0x4945_4E44 { break }                                             // IEND
            pos += 12 + len
        }
        guard !idat.isEmpty else { throw DecodeFailure("truncated PNG (no image data)") }
        if h.colorType == 3 && palette.count < 3 { throw DecodeFailure("corrupt PNG (palette image without PLTE)") }

        let bpp = h.channels * h.bitDepth / 8                 // bytes per pixel (≥ 1 here)
        let stride = h.width * bpp
        let rawSize = h.height * (stride + 1)
        let buf = work.reserve(total + 2 * rawSize)
        var o = 0
        for (start, len) in idat {
            (buf + o).update(from: bytes.baseAddress!.advanced(by: start).assumingMemoryBound(to: UInt8.self), count: len)
            o += len
        }
        let raw = buf + total
        var destLen = uLongf(rawSize)
        let z = uncompress(raw, &destLen, buf, uLong(total))
        guard z == Z_OK, Int(destLen) == rawSize else {
            throw DecodeFailure(z == Z_BUF_ERROR || z == Z_OK ? "truncated PNG (image data ends early)" : "corrupt PNG (zlib error \(z))")
        }
        // Undo the per-row filters into `pixels` (rows without their filter byte).
        let pixels = raw + rawSize
        for y in 0..<h.height {
            let filter = raw[y * (stride + 1)]
            let src = raw + y * (stride + 1) + 1
            let cur = pixels + y * stride
            let prev: UnsafeMutablePointer<UInt8>? = y > 0 ? pixels + (y - 1) * stride : nil
            for i in 0..<stride {
                let a = i >= bpp ? Int(cur[i - bpp]) : 0
                let b = prev.map { Int($0[i]) } ?? 0
                let c = (i >= bpp ? prev.map { Int($0[i - bpp]) } : nil) ?? 0
                let x = Int(src[i])
                let v: Int
                switch filter {
                case 0: v = x
                case 1: v = x + a
                case 2: v = x + b
                case 3: v = x + (a + b) / 2
                case 4:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    v = x + (pa <= pb && pa <= pc ? a : (pb <= pc ? b : c))
                default: throw DecodeFailure("corrupt PNG (filter type \(filter) in row \(y))")
                }
                cur[i] = UInt8(truncatingIfNeeded: v)
            }
        }
        // To RGB.
        let n = h.width * h.height
        let out = rgb.reserve(n * 3)
        let step = h.bitDepth / 8                              // 16-bit: take the high (first) byte
        for i in 0..<n {
            let p = pixels + i * bpp
            switch h.colorType {
            case 0, 4:
                let g = p[0]; out[3 * i] = g; out[3 * i + 1] = g; out[3 * i + 2] = g
            case 3:
                let k = Int(p[0]) * 3
                guard k + 2 < palette.count else { throw DecodeFailure("corrupt PNG (palette index \(p[0]))") }
                out[3 * i] = palette[k]; out[3 * i + 1] = palette[k + 1]; out[3 * i + 2] = palette[k + 2]
            default:
                out[3 * i] = p[0]; out[3 * i + 1] = p[step]; out[3 * i + 2] = p[2 * step]
            }
        }
        return out
    }

    private static func be32(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt32 {
        UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
    }
}
