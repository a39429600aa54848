import Foundation
import XCTest
import Kernels
@testable import DataPipeline

/// Our JPEG/PNG decoding and resampling against Pillow's (Golden/make_golden.py wrote the references).
final class ImageGoldenTests: XCTestCase {
    struct Check: Decodable {
        let name: String, width: Int, height: Int, expected: String, source: String, op: String
        let box: [Int]?
        let resize: [Int]?
    }
    struct Manifest: Decodable { let checks: [Check] }

    func manifest() throws -> [Check] {
        let data = try Data(contentsOf: URL(fileURLWithPath: TestData.golden + "/manifest.json"))
        return try JSONDecoder().decode(Manifest.self, from: data).checks
    }

    func expected(_ c: Check) throws -> [UInt8] {
        try IDXFile.gunzip(TestData.golden + "/" + c.expected)
    }

    func sourcePath(_ c: Check) throws -> String {
        c.source.hasPrefix("Golden/") ? TestData.golden + "/" + c.source.dropFirst(7)
                                      : try TestData.require(TestData.shared + "/" + c.source)
    }

    /// Full-size decode of a file to RGB.
    func decode(_ path: String) throws -> (UnsafePointer<UInt8>, Int, Int, DecodeWorkspace) {
        let ws = DecodeWorkspace()
        let n = try readFile(path, into: ws.file)
        let d = try ImageDecoder.decode(.encoded(UnsafeRawBufferPointer(start: ws.file.pointer, count: n)), minimum: nil, ws)
        return (d.pixels, d.width, d.height, ws)
    }

    func compare(_ got: [Float], _ want: [UInt8], _ name: String, maxError: Float) {
        XCTAssertEqual(got.count, want.count, name)
        var worst: Float = 0, sum: Float = 0
        for i in 0..<min(got.count, want.count) {
            let e = abs(got[i] - Float(want[i]))
            worst = max(worst, e); sum += e
        }
        XCTAssertLessThanOrEqual(worst, maxError, "\(name): largest difference \(worst) levels")
        XCTAssertLessThan(sum / Float(max(got.count, 1)), 0.35, "\(name): mean difference too large")
    }

    func testDecodesLikePillowWithinOneLevel() throws {
        for c in try manifest() where c.op == "decode" {
            let (p, w, h, ws) = try decode(try sourcePath(c))
            XCTAssertEqual([w, h], [c.width, c.height], c.name)
            let got = (0..<(w * h * 3)).map { Float(p[$0]) }
            compare(got, try expected(c), c.name, maxError: 1)
            withExtendedLifetime(ws) {}
        }
    }

    /// PNG is lossless: libpng's pixels equal Pillow's exactly, for every colour type, 1- to 16-bit samples,
    /// palettes and Adam7-interlaced files (make_png_golden.py).
    func testPNGsDecodeExactlyLikePillow() throws {
        let pngs = try manifest().filter { $0.op == "decode" && $0.name.hasPrefix("png_") }
        XCTAssertGreaterThanOrEqual(pngs.count, 14)
        for c in pngs {
            let (p, w, h, ws) = try decode(try sourcePath(c))
            XCTAssertEqual([w, h], [c.width, c.height], c.name)
            let want = try expected(c)
            let differing = (0..<(w * h * 3)).filter { p[$0] != want[$0] }.count
            XCTAssertEqual(differing, 0, "\(c.name): \(differing) bytes differ from Pillow's")
            withExtendedLifetime(ws) {}
        }
    }

    func testGreyscaleBecomesRGB() throws {
        let c = try manifest().first { $0.name == "decode_grey" }!
        let (p, w, h, ws) = try decode(try sourcePath(c))
        for i in stride(from: 0, to: w * h, by: 97) { XCTAssertTrue(p[3 * i] == p[3 * i + 1] && p[3 * i] == p[3 * i + 2]) }
        withExtendedLifetime(ws) {}
    }

    /// torchvision's resized_crop on PIL images: crop, then resize with the antialiased bilinear filter.
    func testCropAndResizeLikePillow() throws {
        for c in try manifest() where c.op == "crop_resize" {
            let (p, w, _, ws) = try decode(try sourcePath(c))
            let b = c.box!
            let (xt, yt) = ws.tables
            xt.compute(lo: b[0], hi: b[2], in0: Double(b[0]), in1: Double(b[2]), outSize: c.width, first: 0, count: c.width)
            yt.compute(lo: b[1], hi: b[3], in0: Double(b[1]), in1: Double(b[3]), outSize: c.height, first: 0, count: c.height)
            var out = [Float](repeating: 0, count: c.width * c.height * 3)
            out.withUnsafeMutableBufferPointer {
                Resampler.run(src: p, srcStride: w * 3, x: xt, y: yt, dst: $0.baseAddress!, dstStride: c.width * 3,
                              gain: SIMD3(repeating: 1), bias: SIMD3(repeating: 0), tmp: ws.tmp)
            }
            // Pillow rounds to 8 bits after each pass; we keep floats: about one level apart at most.
            compare(out, try expected(c), c.name, maxError: 1.01)
        }
    }

    /// The evaluation transform end to end (size 70: resize to ⌊70/0.875⌋ = 80, centre crop 70).
    func testEvalTransformLikePillow() throws {
        for c in try manifest() where c.op == "resize_center" {
            let dir = try TestData.tempDir("golden")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            for split in ["train", "val"] {
                try FileManager.default.createDirectory(atPath: "\(dir)/\(split)/a", withIntermediateDirectories: true)
                try FileManager.default.copyItem(atPath: try sourcePath(c), toPath: "\(dir)/\(split)/a/x.jpg")
            }
            var options = DataOptions()
            options.imageSize = 70
            options.dctScaling = false      // Pillow resizes the full decode (DCT scaling: ImageFolderTests)
            let splits = try openData("imagefolder:" + dir, options: options)
            let got = TestData.levels(try TestData.sample(splits.val, 0, augment: false), .imageNet)
            compare(got, try expected(c), c.name, maxError: 1.01)
        }
    }
}
