import CPNG

/// PNG files of image folders (ImageNet has a few PNGs named .JPEG), decoded by libpng: every colour type,
/// bit depths 1–16, palettes, Adam7 interlacing. Converted to packed RGB as Pillow's `convert("RGB")` does:
/// alpha and transparency dropped, grey replicated; 16-bit samples keep their high byte (Pillow's own
/// conversion clips 16-bit grey, see Tests/DataPipelineTests/Golden/make_golden.py). A file libpng rejects is a bad
/// image, with libpng's reason.
enum PNGDecoder {
    static func isPNG(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let sig: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        return bytes.count >= 8 && (0..<8).allSatisfy { bytes[$0] == sig[$0] }
    }

    struct Header { var width = 0, height = 0 }

    /// Width and height, from the header chunks only.
    static func header(_ bytes: UnsafeRawBufferPointer) throws -> Header {
        var w: UInt32 = 0, h: UInt32 = 0
        try call { err in rm_png_decode(base(bytes), bytes.count, &w, &h, nil, 0, err, 256) }
        guard w > 0, h > 0 else { throw DecodeFailure("corrupt PNG (size \(w)×\(h))") }
        return Header(width: Int(w), height: Int(h))
    }

    /// Decodes to packed RGB (`width·height·3` bytes in `rgb`).
    static func decode(_ bytes: UnsafeRawBufferPointer, header h: Header, into rgb: Scratch<UInt8>) throws
        -> UnsafeMutablePointer<UInt8> {
        let n = h.width * h.height * 3
        let out = rgb.reserve(n)
        var w: UInt32 = 0, hh: UInt32 = 0
        try call { err in rm_png_decode(base(bytes), bytes.count, &w, &hh, out, n, err, 256) }
        guard Int(w) == h.width, Int(hh) == h.height else { throw DecodeFailure("corrupt PNG (size changed)") }
        return out
    }

    private static func base(_ bytes: UnsafeRawBufferPointer) -> UnsafePointer<UInt8> {
        bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
    }

    private static func call(_ body: (UnsafeMutablePointer<CChar>) -> Int32) throws {
        var message = [CChar](repeating: 0, count: 256)
        let rc = message.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
        if rc != 0 {
            let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw DecodeFailure("corrupt PNG (libpng: \(reason.isEmpty ? "unreadable" : reason))")
        }
    }
}
