import Foundation
import XCTest
import Kernels
@testable import DataPipeline

/// Packing image folders into shards, reading them back, resuming, and damaged shards.
final class ShardTests: XCTestCase {
    var out: String!
    override func setUpWithError() throws { out = try TestData.tempDir("shards") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: out) }

    func assertSameBatches(_ a: Dataset, _ b: Dataset, sampler: DistributedSampler, augment: Bool, epochs: [Int],
                           limit: Int = .max, file: StaticString = #filePath, line: UInt = #line) throws {
        for epoch in epochs {
            let x = try TestData.epoch(BatchLoader(dataset: a, sampler: sampler, batchSize: 128, augment: augment, seed: 7, threads: 1), epoch, limit: limit)
            let y = try TestData.epoch(BatchLoader(dataset: b, sampler: sampler, batchSize: 128, augment: augment, seed: 7, threads: 2), epoch, limit: limit)
            XCTAssertEqual(x.count, y.count, file: file, line: line)
            for (p, q) in zip(x, y) {
                XCTAssertEqual(p.0, q.0, "indices", file: file, line: line)
                XCTAssertEqual(p.1, q.1, "labels", file: file, line: line)
                XCTAssertTrue(p.2 == q.2, "epoch \(epoch): pixels differ", file: file, line: line)
            }
        }
    }

    /// The check: pack CIFAR-10 and training from the shards sees exactly the folder's batches.
    func testPackedCIFAR10GivesTheFolderBatchesBitForBit() throws {
        let root = try TestData.require(TestData.cifar10)
        var o = PackOptions()
        o.encoding = .raw
        o.shortSide = 32
        o.shards = 4
        o.threads = 2
        let reused = try Packer(source: root, out: out, options: o).run()
        XCTAssertEqual(reused, ["train": 0, "val": 0])
        let names = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        XCTAssertEqual(names, ["index.json", "train-00000-of-00004.rms", "train-00001-of-00004.rms", "train-00002-of-00004.rms",
                               "train-00003-of-00004.rms", "val-00000-of-00001.rms"])
        let folder = try openData("imagefolder:" + root), shards = try openData("shards:" + out)
        XCTAssertEqual(shards.train.count, 50000)
        XCTAssertEqual(shards.val.count, 10000)
        XCTAssertEqual(shards.train.classNames, folder.train.classNames)
        XCTAssertEqual((0..<50000).map(shards.train.label), (0..<50000).map(folder.train.label))
        // Shuffled training batches (from all over the set) of two epochs, and the whole evaluation epoch.
        try assertSameBatches(folder.train, shards.train, sampler: DistributedSampler(count: 50000, worldSize: 2, rank: 1, shuffle: true, seed: 7),
                              augment: true, epochs: [0, 1], limit: 12)
        try assertSameBatches(folder.val, shards.val, sampler: .evaluation(count: 10000), augment: false, epochs: [0])
    }

    func testResumeReusesVerifiedShardsAndDamageIsNamed() throws {
        let src = try TestData.smallFolder(try TestData.tempDir("packsrc"), classes: 3, perClass: 4)
        defer { try? FileManager.default.removeItem(atPath: src) }
        var o = PackOptions()
        o.shortSide = 40                                   // 224-px photos: resized and re-encoded as JPEG
        o.shards = 3
        var updates = 0
        let counter = LineSink()
        XCTAssertEqual(try Packer(source: src, out: out, options: o).run { p in counter.add("\(p.split) \(p.done)/\(p.total)") },
                       ["train": 0, "val": 0])
        updates = counter.lines.count
        XCTAssertGreaterThan(updates, 12)
        XCTAssertTrue(counter.lines.contains("train 12/12"))
        let shard1 = "\(out!)/train-00001-of-00003.rms"
        let before = try FileManager.default.attributesOfItem(atPath: shard1)[.modificationDate] as! Date
        // A re-run keeps every shard (checksums verify) and rewrites nothing.
        try Data("partial".utf8).write(to: URL(fileURLWithPath: shard1 + ".tmp"))   // debris of a killed run
        XCTAssertEqual(try Packer(source: src, out: out, options: o).run(), ["train": 3, "val": 3])
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: shard1)[.modificationDate] as! Date, before)

        var small = DataOptions()
        small.imageSize = 36
        let splits = try openData("shards:" + out, options: small)
        XCTAssertEqual(splits.train.count, 12)
        XCTAssertEqual(try (splits.train as! ImageDataset).decodeRGB(5).width, 40)
        XCTAssertTrue(try TestData.sample(splits.train, 5, augment: true).allSatisfy(\.isFinite))

        // Flip one payload byte of shard 1: opening names the shard; reading record by record names the record.
        let h = FileHandle(forUpdatingAtPath: shard1)!
        try h.seek(toOffset: 100)
        let byte = try h.read(upToCount: 1)!
        try h.seek(toOffset: 100)
        try h.write(contentsOf: Data([byte[0] ^ 0x5A]))
        try h.close()
        XCTAssertThrowsError(try openData("shards:" + out)) { e in
            XCTAssertTrue("\(e)".contains("train-00001-of-00003.rms") && "\(e)".contains("damaged"), "\(e)")
        }
        var streaming = small
        streaming.shardMemoryBudget = 0
        let streamed = try openData("shards:" + out, options: streaming).train
        XCTAssertThrowsError(try TestData.sample(streamed, 4, augment: false)) { e in
            XCTAssertTrue(e is BadImage && "\(e)".contains("train-00001-of-00003.rms record 0"), "\(e)")
        }
        // A re-run rebuilds only the damaged shard.
        XCTAssertEqual(try Packer(source: src, out: out, options: o).run(), ["train": 2, "val": 3])
        XCTAssertNoThrow(try openData("shards:" + out))
        // A truncated shard is named too.
        try FileHandle(forUpdatingAtPath: "\(out!)/val-00002-of-00003.rms")!.truncate(atOffset: 50)
        XCTAssertThrowsError(try openData("shards:" + out)) { e in XCTAssertTrue("\(e)".contains("val-00002-of-00003.rms"), "\(e)") }
        XCTAssertThrowsError(try openData("shards:" + out + "/nowhere")) { e in XCTAssertTrue("\(e)".contains("nowhere"), "\(e)") }
    }

    /// JPEGs that need no resizing are stored byte for byte, and stream-mode reads match memory mode.
    func testJPEGPassthroughAndStreamingMatchTheFolder() throws {
        let src = try TestData.smallFolder(try TestData.tempDir("packsrc"), classes: 2, perClass: 5)
        defer { try? FileManager.default.removeItem(atPath: src) }
        // One bad file: packed as a "bad" record at its index, skipped when loading.
        let cls = try FileManager.default.contentsOfDirectory(atPath: "\(src)/train").sorted()[1]
        try Data([0xFF, 0xD8, 0xFF, 0, 1]).write(to: URL(fileURLWithPath: "\(src)/train/\(cls)/zz_bad.jpg"))
        var o = PackOptions()
        o.shards = 2
        let log = LineSink().log()
        try Packer(source: src, out: out, options: o, badImages: log).run()
        XCTAssertEqual(log.count, 1)
        let index = try ShardIndex.read(out)
        XCTAssertEqual(index.splits["train"]!.badImages, 1)
        var opts = DataOptions()
        opts.imageSize = 48
        let folder = try openData("imagefolder:" + src, options: opts)
        for budget in [nil, 0] as [Int?] {
            opts.shardMemoryBudget = budget
            let shards = try openData("shards:" + out, options: opts)
            XCTAssertEqual(shards.train.count, 11)
            try assertSameBatches(folder.train, shards.train, sampler: DistributedSampler(count: 11, shuffle: true, seed: 1),
                                  augment: true, epochs: [0, 1])
            try assertSameBatches(folder.val, shards.val, sampler: .evaluation(count: 10), augment: false, epochs: [0])
        }
    }
}
