import Foundation
import XCTest
import Kernels
@testable import DataPipeline

/// Writes IDX files (gzip'd through the `gzip` tool, as Debian ships them) and reads them back.
final class FashionMNISTTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "fmnist-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func idx(dims: [Int], bytes: [UInt8]) -> Data {
        var d = Data([0, 0, 0x08, UInt8(dims.count)])
        for v in dims { d.append(contentsOf: [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)]) }
        d.append(contentsOf: bytes)
        return d
    }

    func write(_ name: String, _ data: Data, gzip: Bool) throws {
        let path = dir + "/" + name
        try data.write(to: URL(fileURLWithPath: path))
        if gzip {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/gzip")
            p.arguments = ["-f", path]
            try p.run(); p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0)
        }
    }

    func makeSet(prefix: String, n: Int, gzip: Bool, labels: [UInt8]? = nil) throws -> [UInt8] {
        var pixels = [UInt8](repeating: 0, count: n * 28 * 28)
        for i in 0..<pixels.count { pixels[i] = UInt8((i * 7 + i / 784) & 255) }
        try write("\(prefix)-images-idx3-ubyte", idx(dims: [n, 28, 28], bytes: pixels), gzip: gzip)
        try write("\(prefix)-labels-idx1-ubyte", idx(dims: [n], bytes: labels ?? (0..<n).map { UInt8($0 % 10) }), gzip: gzip)
        return pixels
    }

    func testReadsGzipAndPlainAndNormalises() throws {
        let pixels = try makeSet(prefix: "train", n: 5, gzip: true)
        _ = try makeSet(prefix: "t10k", n: 3, gzip: false)
        let splits = try openData("fashion-mnist:" + dir)
        XCTAssertEqual(splits.train.count, 5)
        XCTAssertEqual(splits.val.count, 3)
        XCTAssertEqual(splits.train.label(3), 3)
        XCTAssertEqual(splits.train.sampleShape.height, 28)
        XCTAssertEqual(splits.train.sampleShape.channels, 1)
        var out = [Float](repeating: 0, count: 784)
        var rng = RandomStream(seed: 1)
        try out.withUnsafeMutableBufferPointer { try splits.train.load(2, augment: false, rng: &rng, into: $0.baseAddress!) }
        for i in [0, 100, 783] {
            let expected = (Float(pixels[2 * 784 + i]) / 255 - 0.2860) / 0.3530
            XCTAssertEqual(out[i], expected, accuracy: 1e-5)
        }
    }

    func testAugmentationIsACropOrFlipOfTheImage() throws {
        _ = try makeSet(prefix: "train", n: 2, gzip: false)
        _ = try makeSet(prefix: "t10k", n: 2, gzip: false)
        let ds = try FashionMNIST(directory: dir, split: .train)
        var plain = [Float](repeating: 0, count: 784), aug = [Float](repeating: 0, count: 784)
        var rng = RandomStream(seed: 9)
        try plain.withUnsafeMutableBufferPointer { try ds.load(1, augment: false, rng: &rng, into: $0.baseAddress!) }
        let zero: Float = -0.2860 / 0.3530
        for trial in 0..<20 {
            var r = RandomStream(seed: 3, stream: UInt64(trial))
            try aug.withUnsafeMutableBufferPointer { try ds.load(1, augment: true, rng: &r, into: $0.baseAddress!) }
            // Every output pixel is either padding or some pixel of the image at a shift of at most 4.
            var matched = false
            for flip in [false, true] {
                for dy in -4...4 {
                    for dx in -4...4 {
                        var all = true
                        for y in 0..<28 where all {
                            for x in 0..<28 {
                                let sx = (flip ? 27 - x : x) + dx, sy = y + dy
                                let want = (sx >= 0 && sx < 28 && sy >= 0 && sy < 28) ? plain[sy * 28 + sx] : zero
                                if abs(aug[y * 28 + x] - want) > 1e-6 { all = false; break }
                            }
                        }
                        if all { matched = true }
                    }
                }
            }
            XCTAssertTrue(matched, "augmented sample \(trial) is not a shifted/flipped copy")
        }
    }

    func testErrorsNameTheFile() throws {
        XCTAssertThrowsError(try openData("fashion-mnist:/definitely/not/here")) { e in
            XCTAssertTrue("\(e)".contains("/definitely/not/here"))
        }
        _ = try makeSet(prefix: "train", n: 4, gzip: false, labels: [0, 1, 2, 3])
        XCTAssertThrowsError(try FashionMNIST(directory: dir, split: .test)) { e in
            XCTAssertTrue("\(e)".contains("t10k-images-idx3-ubyte"), "\(e)")
        }
        // Truncated image file.
        let truncated = idx(dims: [4, 28, 28], bytes: [UInt8](repeating: 1, count: 100))
        try write("train-images-idx3-ubyte", truncated, gzip: false)
        XCTAssertThrowsError(try FashionMNIST(directory: dir, split: .train)) { e in
            XCTAssertTrue("\(e)".contains("train-images-idx3-ubyte") && "\(e)".contains("truncated"), "\(e)")
        }
        // Label out of range.
        _ = try makeSet(prefix: "train", n: 4, gzip: false, labels: [0, 1, 12, 3])
        XCTAssertThrowsError(try FashionMNIST(directory: dir, split: .train)) { e in
            XCTAssertTrue("\(e)".contains("label 12"), "\(e)")
        }
        XCTAssertThrowsError(try openData("imagenet-nope")) { e in XCTAssertTrue("\(e)".contains("--data")) }
    }

    func testDebianFashionMNISTIsReadable() throws {
        let dir = FashionMNIST.defaultDirectory
        guard FileManager.default.fileExists(atPath: dir) else {
            throw TestSetupError("dataset-fashion-mnist not installed: run launch/setup.sh")
        }
        let splits = try openData("fashion-mnist")
        XCTAssertEqual(splits.train.count, 60000)
        XCTAssertEqual(splits.val.count, 10000)
        var counts = [Int](repeating: 0, count: 10)
        for i in 0..<splits.val.count { counts[splits.val.label(i)] += 1 }
        XCTAssertEqual(counts, [Int](repeating: 1000, count: 10))
    }
}
