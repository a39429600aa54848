import CZlib
import Foundation
import XCTest
import Kernels
@testable import Imaging

/// The PNG writer, checked by re-parsing: signature, chunk layout, every CRC (zlib's crc32), IHDR fields,
/// IDAT inflated with zlib's `uncompress`, filter bytes, pixels; and by libpng's `pngfix` when installed.
final class PNGTests: XCTestCase {
    struct Chunk { let type: String; let data: [UInt8] }

    static func be32(_ b: [UInt8], _ at: Int) -> Int {
        Int(b[at]) << 24 | Int(b[at + 1]) << 16 | Int(b[at + 2]) << 8 | Int(b[at + 3])
    }

    /// Splits a PNG into chunks, failing on a bad signature, a truncated chunk or a CRC mismatch.
    static func chunks(_ png: [UInt8]) throws -> [Chunk] {
        struct Bad: Error { let why: String }
        guard png.count >= 8, Array(png[0..<8]) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else {
            throw Bad(why: "signature")
        }
        var out: [Chunk] = []
        var at = 8
        while at < png.count {
            guard at + 12 <= png.count else { throw Bad(why: "truncated chunk header") }
            let len = be32(png, at)
            guard at + 12 + len <= png.count else { throw Bad(why: "truncated chunk") }
            let body = Array(png[(at + 4)..<(at + 8 + len)])
            let crc = body.withUnsafeBufferPointer { Int(crc32(0, $0.baseAddress, uInt($0.count))) }
            guard crc == be32(png, at + 8 + len) else { throw Bad(why: "CRC of chunk at \(at)") }
            out.append(Chunk(type: String(decoding: body[0..<4], as: UTF8.self), data: Array(body[4...])))
            at += 12 + len
        }
        return out
    }

    /// Decodes our own subset (8-bit grey/RGB, filter 0, no interlace) back to pixels.
    static func decode(_ png: [UInt8]) throws -> (width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        struct Bad: Error { let why: String }
        let cs = try chunks(png)
        guard cs.first?.type == "IHDR", cs.last?.type == "IEND", cs.last?.data.isEmpty == true else { throw Bad(why: "order") }
        let ihdr = cs[0].data
        guard ihdr.count == 13 else { throw Bad(why: "IHDR length") }
        let w = be32(ihdr, 0), h = be32(ihdr, 4)
        guard ihdr[8] == 8, ihdr[10] == 0, ihdr[11] == 0, ihdr[12] == 0 else { throw Bad(why: "IHDR fields") }
        let channels = ihdr[9] == 2 ? 3 : ihdr[9] == 0 ? 1 : -1
        guard channels > 0 else { throw Bad(why: "colour type \(ihdr[9])") }
        let idat = cs.filter { $0.type == "IDAT" }.flatMap(\.data)
        var raw = [UInt8](repeating: 0, count: (w * channels + 1) * h)
        var rawLen = uLongf(raw.count)
        let rc = uncompress(&raw, &rawLen, idat, uLong(idat.count))
        guard rc == Z_OK, Int(rawLen) == raw.count else { throw Bad(why: "inflate \(rc), \(rawLen) bytes") }
        var pixels: [UInt8] = []
        for y in 0..<h {
            let row = y * (w * channels + 1)
            guard raw[row] == 0 else { throw Bad(why: "filter \(raw[row]) on row \(y)") }
            pixels += raw[(row + 1)..<(row + 1 + w * channels)]
        }
        return (w, h, channels, pixels)
    }

    /// libpng's pngfix accepts the file. Its absence is a failure: launch/setup.sh installs libpng-tools.
    static func pngfix(_ path: String) throws -> Bool {
        guard let ok = pngfixAccepts(path) else {
            XCTFail("pngfix (Debian's libpng-tools) is missing: run launch/setup.sh")
            return false
        }
        return ok
    }

    static func pngfixAccepts(_ path: String) -> Bool? {
        let tool = "/usr/bin/pngfix"
        guard FileManager.default.isExecutableFile(atPath: tool) else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = ["--quiet", path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    func temporaryPath(_ name: String) -> String {
        NSTemporaryDirectory() + "mixing-\(ProcessInfo.processInfo.processIdentifier)-\(name)"
    }

    func testRoundTripRGBAndGrey() throws {
        for (w, h, c) in [(1, 1, 3), (37, 23, 3), (64, 5, 1), (3, 200, 1), (400, 300, 3)] {
            var rng = RandomStreamBytes(seed: UInt64(w * 1000 + h * 10 + c))
            let pixels = (0..<(w * h * c)).map { _ in rng.next() }
            let path = temporaryPath("\(w)x\(h)x\(c).png")
            defer { try? FileManager.default.removeItem(atPath: path) }
            try PNGImage.write(pixels: pixels, width: w, height: h, channels: c, to: path)
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            let d = try Self.decode(bytes)
            XCTAssertEqual(d.width, w); XCTAssertEqual(d.height, h); XCTAssertEqual(d.channels, c)
            XCTAssertEqual(d.pixels, pixels)
            let idats = try Self.chunks(bytes).filter { $0.type == "IDAT" }.count
            // Random bytes do not compress: 360 000 of them need more than one 256 KiB IDAT.
            XCTAssertEqual(idats > 1, w * h * c > PNGImage.idatChunkSize, "\(idats) IDAT chunks")
            try XCTAssertTrue(Self.pngfix(path), "pngfix rejects \(path)")
        }
    }

    /// The parser itself must reject damage, or the round trip proves nothing.
    func testCorruptionIsDetected() throws {
        let png = try PNGImage.encode(pixels: [UInt8](repeating: 200, count: 12), width: 2, height: 2, channels: 3)
        var bad = png
        bad[bad.count - 20] ^= 0x40                         // inside IDAT: its CRC no longer matches
        XCTAssertThrowsError(try Self.decode(bad))
        let path = temporaryPath("bad.png")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(bad).write(to: URL(fileURLWithPath: path))
        try XCTAssertFalse(Self.pngfix(path), "pngfix should reject a damaged file")
        XCTAssertThrowsError(try PNGImage.encode(pixels: [1, 2, 3], width: 2, height: 2, channels: 3))
        XCTAssertThrowsError(try PNGImage.encode(pixels: [1, 2, 3, 4], width: 1, height: 1, channels: 4))
    }

    func testTextRendering() throws {
        var canvas = Canvas(width: 80, height: 20)
        canvas.drawText("1", x: 2, y: 3, color: .red)
        // '1' = columns [00 42 7F 40 00]: the middle column is lit on all 7 rows, bottom row has 3 pixels.
        for row in 0..<7 { XCTAssertEqual(canvas[2 + 2, 3 + row], .red, "row \(row)") }
        XCTAssertEqual(canvas[2 + 1, 3 + 6], .red)
        XCTAssertEqual(canvas[2 + 3, 3 + 6], .red)
        XCTAssertEqual(canvas[2 + 0, 3 + 0], .white)
        XCTAssertEqual(canvas[2 + 1, 3 + 0], .white)
        XCTAssertEqual(canvas[2 + 1, 3 + 1], .red)                        // the serif
        // Scale 2 doubles every font pixel; unknown characters draw '?'; clipping never traps.
        var big = Canvas(width: 40, height: 20)
        big.drawText("1", x: 0, y: 0, scale: 2)
        XCTAssertEqual(big[4, 0], .black); XCTAssertEqual(big[5, 13], .black); XCTAssertEqual(big[6, 0], .white)
        var q1 = Canvas(width: 10, height: 10), q2 = Canvas(width: 10, height: 10)
        q1.drawText("?", x: 1, y: 1); q2.drawText("\u{263A}", x: 1, y: 1)
        XCTAssertEqual(q1.pixels, q2.pixels)
        canvas.drawText("cat 0.62 dog 38% -:", x: -5, y: 15, scale: 3)
        XCTAssertEqual(BitmapFont.textWidth("ab", scale: 2), 22)
        // Every supported character differs from '?' (except '?' itself) and has at least one pixel.
        for ch in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.,:%-+=_/()'#" {
            XCTAssertNotEqual(BitmapFont.columns(ch), BitmapFont.columns("?"), "\(ch)")
            XCTAssertTrue(BitmapFont.columns(ch).contains { $0 != 0 }, "\(ch)")
        }
    }

    /// A labelled sheet of the whole font and a mixed image: written, re-parsed, and (if present) pngfix'd.
    /// Set MIXING_PNG_DIR to keep it for a look.
    func testLabelledSheet() throws {
        var canvas = Canvas(width: 260, height: 90)
        canvas.drawText("0123456789 .,:%-+=_/()'#", x: 2, y: 2)
        canvas.drawText("ABCDEFGHIJKLMNOPQRSTUVWXYZ", x: 2, y: 12)
        canvas.drawText("abcdefghijklmnopqrstuvwxyz", x: 2, y: 22)
        let img = Tensor(shape: [1, 16, 16, 3])
        var rng = RandomStream(seed: 9)
        for i in 0..<img.count { img[i] = Float(rng.normal() * 0.3) }
        canvas.drawImage(img, index: 0, x: 2, y: 34, scale: 3, mean: [0.5, 0.5, 0.5], std: [1, 1, 1])
        canvas.drawBox(x1: 3, y1: 4, x2: 11, y2: 12, imageX: 2, imageY: 34, scale: 3)
        canvas.drawText("airplane 0.73", x: 56, y: 40, scale: 2, color: .red)
        canvas.drawText("frog 27.0%", x: 56, y: 60, scale: 2, color: .green)
        let dir = ProcessInfo.processInfo.environment["MIXING_PNG_DIR"]
        let path = dir.map { $0 + "/mixing-sheet.png" } ?? temporaryPath("sheet.png")
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: path) } }
        try canvas.writePNG(to: path)
        let d = try Self.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
        XCTAssertEqual(d.pixels, canvas.pixels)
        try XCTAssertTrue(Self.pngfix(path))
    }
}

/// Pseudo-random bytes for test images.
struct RandomStreamBytes {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt8 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return UInt8(truncatingIfNeeded: state >> 32)
    }
}
