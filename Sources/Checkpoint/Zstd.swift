import CZstd
import Foundation

/// zstd frames with the content checksum on: a flipped bit or a cut-off frame fails to decompress.
enum Zstd {
    static func compress(_ input: UnsafeRawBufferPointer, level: Int32) throws -> [UInt8] {
        guard let cctx = ZSTD_createCCtx() else { throw CheckpointError("zstd: cannot create a compression context") }
        defer { ZSTD_freeCCtx(cctx) }
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)
        var out = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count))
        let n = out.withUnsafeMutableBytes { o in
            ZSTD_compress2(cctx, o.baseAddress, o.count, input.baseAddress, input.count)
        }
        if ZSTD_isError(n) != 0 { throw CheckpointError("zstd: \(String(cString: ZSTD_getErrorName(n)))") }
        out.removeLast(out.count - n)
        return out
    }

    static func decompress(_ input: ArraySlice<UInt8>, expectedSize: Int, source: String) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: expectedSize)
        let n = input.withUnsafeBytes { i in
            out.withUnsafeMutableBytes { o in ZSTD_decompress(o.baseAddress, o.count, i.baseAddress, i.count) }
        }
        if ZSTD_isError(n) != 0 {
            throw CheckpointError("\(source): corrupt (\(String(cString: ZSTD_getErrorName(n))))")
        }
        guard n == expectedSize else { throw CheckpointError("\(source): corrupt (size \(n), expected \(expectedSize))") }
        return out
    }
}

public struct CheckpointError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
