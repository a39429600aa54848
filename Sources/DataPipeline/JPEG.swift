import CTurboJPEG
import Foundation

/// libjpeg-turbo through its TurboJPEG API: header parsing, decoding to RGB (grayscale and YCbCr directly,
/// CMYK/YCCK through CMYK), DCT-domain downscaling, and encoding for packed shards. One instance per
/// thread (a TurboJPEG handle is not thread-safe); `ImageDecoder` keeps them in its pool.
final class JPEGCodec {
    private var decoder: tjhandle
    private var encoder: tjhandle?

    init() {
        guard let h = tjInitDecompress() else { fatalError("tjInitDecompress failed") }
        decoder = h
    }
    deinit {
        tjDestroy(decoder)
        if let encoder { tjDestroy(encoder) }
    }

    struct Header { var width: Int, height: Int, cmyk: Bool }

    static func isJPEG(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF
    }

    func header(_ bytes: UnsafeRawBufferPointer) throws -> Header {
        var w: Int32 = 0, h: Int32 = 0, subsamp: Int32 = 0, colorspace: Int32 = 0
        let r = tjDecompressHeader3(decoder, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                    UInt(bytes.count), &w, &h, &subsamp, &colorspace)
        // A header cut short can "succeed" with a 0×0 image: treat it as the corruption it is.
        guard r == 0, w > 0, h > 0 else {
            let failure = DecodeFailure("corrupt JPEG header (\(message()))")
            resetDecoder()
            throw failure
        }
        let cmyk = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        return Header(width: Int(w), height: Int(h), cmyk: cmyk)
    }

    /// The TurboJPEG scaling factors below 1, largest first (7/8, 3/4, …, 1/8).
    static let downscales: [(num: Int, denom: Int)] = {
        var n: Int32 = 0
        guard let f = tjGetScalingFactors(&n) else { return [] }
        return (0..<Int(n)).map { (Int(f[$0].num), Int(f[$0].denom)) }
            .filter { $0.num < $0.denom }
            .sorted { Double($0.num) / Double($0.denom) > Double($1.num) / Double($1.denom) }
    }()

    /// The smallest decoded size whose width is at least `minWidth` and height at least `minHeight`
    /// (TurboJPEG rounds scaled sizes up). Full size when no factor is small enough to help.
    static func scaledSize(_ h: Header, minWidth: Double, minHeight: Double) -> (width: Int, height: Int) {
        var best = (h.width, h.height)
        for f in downscales {
            let w = (h.width * f.num + f.denom - 1) / f.denom, hh = (h.height * f.num + f.denom - 1) / f.denom
            if Double(w) >= minWidth && Double(hh) >= minHeight { best = (w, hh) } else { break }
        }
        return best
    }

    /// Decodes to packed RGB at `size` (one of the sizes `scaledSize` returns), with libjpeg's warning when
    /// the data was damaged. A truncated file is an error, as in Pillow ("image file is truncated"). A
    /// complete file whose entropy-coded data is damaged (a corrupt restart interval: "premature end of data
    /// segment", "extraneous bytes before marker", "bad Huffman code") decodes as far as libjpeg can, as
    /// Pillow and djpeg do: TurboJPEG then returns -1 with `tjGetErrorCode` TJERR_WARNING (libjpeg-turbo
    /// ≥ 2.1; TJFLAG_STOPONWARNING is not set), and the message is returned for the caller to log.
    func decode(_ bytes: UnsafeRawBufferPointer, header: Header, size: (width: Int, height: Int),
                into rgb: Scratch<UInt8>, cmykScratch: Scratch<UInt8>) throws -> (pixels: UnsafeMutablePointer<UInt8>, warning: String?) {
        let n = size.width * size.height
        let out = rgb.reserve(n * 3)
        let src = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let warning: String?
        if header.cmyk {
            // libjpeg cannot convert CMYK to RGB itself. TurboJPEG hands back the stored (Adobe, inverted)
            // values, so R = C·K/255 — the same result as Pillow's CMYK→RGB after its inverted load.
            let cmyk = cmykScratch.reserve(n * 4)
            warning = try check(tjDecompress2(decoder, src, UInt(bytes.count), cmyk, Int32(size.width), 0,
                                              Int32(size.height), Int32(TJPF_CMYK.rawValue), 0), bytes)
            for i in 0..<n {
                let p = cmyk + 4 * i, k = UInt32(p[3])
                for c in 0..<3 { out[3 * i + c] = UInt8((UInt32(p[c]) * k + 127) / 255) }
            }
        } else {
            warning = try check(tjDecompress2(decoder, src, UInt(bytes.count), out, Int32(size.width), 0,
                                              Int32(size.height), Int32(TJPF_RGB.rawValue), 0), bytes)
        }
        return (out, warning)
    }

    /// nil when the decode was clean, libjpeg's warning when it decoded damaged data; throws when it failed.
    private func check(_ r: Int32, _ bytes: UnsafeRawBufferPointer) throws -> String? {
        if r == 0 { return nil }
        let msg = message()
        // libjpeg's last message is what TurboJPEG keeps: a truncated file's "Premature end of JPEG file" can
        // be followed by "premature end of data segment", which a damaged restart interval gives alone, so
        // truncation is told by the file itself (no end-of-image marker after its last scan).
        let truncated = msg.contains("Premature end of JPEG file") || !JPEGCodec.endsAfterLastScan(bytes)
        if tjGetErrorCode(decoder) == Int32(TJERR_WARNING.rawValue) && !truncated { return msg }
        resetDecoder()
        throw DecodeFailure(truncated ? "truncated JPEG (\(msg))" : "corrupt JPEG (\(msg))")
    }

    /// Whether an end-of-image marker (FF D9) follows the last start-of-scan marker (FF DA). Entropy-coded
    /// data holds FF only as FF 00 or a restart marker FF D0–D7 (ITU T.81 B.1.1.5), so an FF D9 after the
    /// last scan header is the image's own end, whatever the scan's data holds.
    static func endsAfterLastScan(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = bytes.count - 2
        while i >= 0 && !(bytes[i] == 0xFF && bytes[i + 1] == 0xDA) { i -= 1 }
        guard i >= 0 else { return false }
        for j in (i + 2)..<max(i + 2, bytes.count - 1) where bytes[j] == 0xFF && bytes[j + 1] == 0xD9 { return true }
        return false
    }

    /// A fresh handle after a failure: libjpeg-turbo 2.1 leaves a handle whose header parse failed in a
    /// state where the next, valid, file fails with the same error (seen: "missing SOS marker").
    private func resetDecoder() {
        guard let fresh = tjInitDecompress() else { return }
        tjDestroy(decoder)
        decoder = fresh
    }

    private func message() -> String { String(cString: tjGetErrorStr2(decoder)) }

    /// Encodes packed RGB (4:2:0, the usual ImageNet sampling) at `quality`.
    func encode(_ rgb: UnsafePointer<UInt8>, width: Int, height: Int, quality: Int) throws -> [UInt8] {
        if encoder == nil { encoder = tjInitCompress() }
        guard let encoder else { throw DecodeFailure("tjInitCompress failed") }
        var buf: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let r = tjCompress2(encoder, rgb, Int32(width), 0, Int32(height), Int32(TJPF_RGB.rawValue), &buf, &size,
                            Int32(TJSAMP_420.rawValue), Int32(quality), 0)
        defer { if let buf { tjFree(buf) } }
        guard r == 0, let buf else { throw DecodeFailure("JPEG encoding failed: \(String(cString: tjGetErrorStr2(encoder)))") }
        return Array(UnsafeBufferPointer(start: buf, count: Int(size)))
    }
}

/// Why a decoder rejected an image (wrapped into `BadImage` with the path by the caller).
struct DecodeFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
