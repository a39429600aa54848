import Foundation
import XCTest
import Kernels
@testable import DataPipeline

/// The official CIFAR-10 / CIFAR-100 binary formats, on files this test writes.
final class CIFARBinaryTests: XCTestCase {
    var dir: String!
    override func setUpWithError() throws { dir = try TestData.tempDir("cifarbin") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Planar CHW pixels of record r: a pattern that differs per channel, row and column.
    func pixel(_ r: Int, _ c: Int, _ y: Int, _ x: Int) -> UInt8 { UInt8((r * 31 + c * 85 + y * 7 + x * 3) & 255) }

    func record(_ r: Int, labels: [UInt8]) -> [UInt8] {
        var out = labels
        for c in 0..<3 { for y in 0..<32 { for x in 0..<32 { out.append(pixel(r, c, y, x)) } } }
        return out
    }

    func write(_ name: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: "\(dir!)/\(name)"))
    }

    func testCIFAR10Binary() throws {
        var r = 0
        for b in 1...5 {
            var bytes: [UInt8] = []
            for _ in 0..<3 { bytes += record(r, labels: [UInt8(r % 10)]); r += 1 }
            try write("data_batch_\(b).bin", bytes)
        }
        try write("test_batch.bin", record(100, labels: [7]) + record(101, labels: [2]))
        try write("batches.meta.txt", Array("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n".utf8))
        let splits = try openData("cifar10-bin:" + dir)
        XCTAssertEqual(splits.train.count, 15)
        XCTAssertEqual(splits.val.count, 2)
        XCTAssertEqual((0..<15).map { splits.train.label($0) }, (0..<15).map { $0 % 10 })
        XCTAssertEqual(splits.val.label(0), 7)
        XCTAssertEqual(splits.train.classNames[9], "truck")
        XCTAssertEqual(splits.train.sampleShape.height, 32)
        // Evaluation sample: HWC, normalised with the CIFAR constants.
        let got = TestData.levels(try TestData.sample(splits.val, 1, augment: false), .cifar)
        for (y, x, c) in [(0, 0, 0), (5, 9, 1), (31, 31, 2), (17, 3, 0)] {
            XCTAssertEqual(got[(y * 32 + x) * 3 + c], Float(pixel(101, c, y, x)), accuracy: 1e-3)
        }
        // Training sample: a shift of at most 4 px (black outside) and maybe a flip of the image.
        let plain = TestData.levels(try TestData.sample(splits.train, 4, augment: false), .cifar)
        for seed in 0..<10 as Range<UInt64> {
            let aug = TestData.levels(try TestData.sample(splits.train, 4, augment: true, seed: seed), .cifar)
            var matched = false
            for flip in [false, true] { for dy in -4...4 { for dx in -4...4 where !matched {
                var all = true
                for y in 0..<32 where all { for x in 0..<32 {
                    let sx = (flip ? 31 - x : x) + dx, sy = y + dy
                    for c in 0..<3 {
                        let want: Float = (sx >= 0 && sx < 32 && sy >= 0 && sy < 32) ? plain[(sy * 32 + sx) * 3 + c] : 0
                        if abs(aug[(y * 32 + x) * 3 + c] - want) > 1e-2 { all = false }
                    }
                } }
                if all { matched = true }
            } } }
            XCTAssertTrue(matched, "seed \(seed): not a padded crop / flip of the image")
        }
    }

    func testCIFAR100BinaryUsesTheFineLabel() throws {
        try write("train.bin", record(0, labels: [3, 42]) + record(1, labels: [19, 99]))
        try FileManager.default.createDirectory(atPath: "\(dir!)/cifar-100-binary", withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: "\(dir!)/train.bin", toPath: "\(dir!)/cifar-100-binary/train.bin")
        try write("cifar-100-binary/test.bin", record(2, labels: [0, 5]))
        let splits = try openData("cifar100-bin:" + dir)              // the folder the archive unpacks to
        XCTAssertEqual(splits.train.numClasses, 100)
        XCTAssertEqual([splits.train.label(0), splits.train.label(1), splits.val.label(0)], [42, 99, 5])
        let got = TestData.levels(try TestData.sample(splits.train, 1, augment: false), .cifar)
        XCTAssertEqual(got[(2 * 32 + 3) * 3 + 1], Float(pixel(1, 1, 2, 3)), accuracy: 1e-3)
    }

    func testTruncatedAndMissingFilesAreNamed() throws {
        try write("train.bin", record(0, labels: [3, 42]) + [1, 2, 3])
        try write("test.bin", record(2, labels: [0, 5]))
        XCTAssertThrowsError(try openData("cifar100-bin:" + dir)) { e in
            XCTAssertTrue("\(e)".contains("train.bin") && "\(e)".contains("truncated"), "\(e)")
        }
        XCTAssertThrowsError(try openData("cifar10-bin:" + dir)) { e in
            XCTAssertTrue("\(e)".contains("data_batch_1.bin"), "\(e)")
        }
        try write("train.bin", record(0, labels: [3, 142]))
        XCTAssertThrowsError(try openData("cifar100-bin:" + dir)) { e in XCTAssertTrue("\(e)".contains("label 142"), "\(e)") }
    }
}
