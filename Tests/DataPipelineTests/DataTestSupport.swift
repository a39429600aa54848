import Foundation
import XCTest
import Kernels
@testable import DataPipeline

/// Paths of the real data (`../shared/data` beside the package, never copied into it) and helpers.
enum TestData {
    /// The package root, from this file's path (Tests/DataPipelineTests/…).
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
    static let shared = (packageRoot as NSString).appendingPathComponent("../shared/data")
    static let imagenette = (shared as NSString).appendingPathComponent("imagenette-mini")
    static let cifar10 = (shared as NSString).appendingPathComponent("cifar10")
    static let golden = (packageRoot as NSString).appendingPathComponent("Tests/DataPipelineTests/Golden")

    /// Skips the test when the shared data is not there.
    static func require(_ path: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else { throw TestSetupError("\(path) not present: tests read ../shared/data") }
        return path
    }

    static func tempDir(_ tag: String) throws -> String {
        let dir = NSTemporaryDirectory() + "rmtrain-\(tag)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// One loaded sample as floats.
    static func sample(_ ds: Dataset, _ index: Int, augment: Bool, seed: UInt64 = 1, epoch: Int = 0) throws -> [Float] {
        let s = ds.sampleShape
        var out = [Float](repeating: .nan, count: s.height * s.width * s.channels)
        var rng = RandomStream(seed: seed, stream: RandomStreams.augmentation, UInt64(epoch), UInt64(index))
        try out.withUnsafeMutableBufferPointer { try ds.load(index, augment: augment, rng: &rng, into: $0.baseAddress!) }
        return out
    }

    /// Undoes a normalisation: back to 0…255 pixel levels.
    static func levels(_ v: [Float], _ n: Normalization) -> [Float] {
        v.enumerated().map { (i, x) in (x * n.std[i % 3] + n.mean[i % 3]) * 255 }
    }

    /// Every batch of an epoch: (indices, labels, image floats) per batch.
    static func epoch(_ loader: BatchLoader, _ epoch: Int, limit: Int = .max) throws -> [([Int], [Int], [Float])] {
        var out: [([Int], [Int], [Float])] = []
        try loader.forEachBatch(epoch: epoch) { b, batch in
            if b < limit { out.append((batch.indices, batch.labels, batch.images.array)) }
        }
        return out
    }

    /// A copy of an imagenette-like folder with `perClass` images of the first `classes` classes.
    static func smallFolder(_ dir: String, classes: Int = 2, perClass: Int = 3) throws -> String {
        let root = try require(imagenette)
        let fm = FileManager.default
        for split in ["train", "val"] {
            let names = try fm.contentsOfDirectory(atPath: "\(root)/\(split)").sorted().prefix(classes)
            for c in names {
                try fm.createDirectory(atPath: "\(dir)/\(split)/\(c)", withIntermediateDirectories: true)
                for f in try fm.contentsOfDirectory(atPath: "\(root)/\(split)/\(c)").sorted().prefix(perClass) {
                    try fm.copyItem(atPath: "\(root)/\(split)/\(c)/\(f)", toPath: "\(dir)/\(split)/\(c)/\(f)")
                }
            }
        }
        return dir
    }
}

/// Collects the lines a `BadImageLog` would print.
final class LineSink: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return stored }
    func add(_ s: String) { lock.lock(); stored.append(s); lock.unlock() }
    func log(limit: Int = 5) -> BadImageLog { BadImageLog(limit: limit) { [self] in add($0) } }
}

/// A missing test prerequisite is a failure, never a skip.
struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
