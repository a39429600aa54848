import Foundation
import XCTest
import Kernels
@testable import DataPipeline

/// Prefetching: the same batches whatever the thread count, recycled batch objects, errors and early exits.
final class LoaderTests: XCTestCase {
    func imagenette(size: Int = 40, augPlus: Bool = true) throws -> Dataset {
        var o = DataOptions()
        o.imageSize = size
        o.augPlus = augPlus
        return PrefixDataset(try openData("imagefolder:" + (try TestData.require(TestData.imagenette)), options: o).train, count: 600)
    }

    func testBatchesDoNotDependOnLoaderThreads() throws {
        let ds = try imagenette()
        let sampler = DistributedSampler(count: 70, worldSize: 2, rank: 1, shuffle: true, seed: 4)
        var reference: [([Int], [Int], [Float])]?
        for threads in [0, 1, 3] {
            let loader = BatchLoader(dataset: PrefixDataset(ds, count: 70), sampler: sampler, batchSize: 8, augment: true,
                                     seed: 11, threads: threads)
            for epoch in 0..<2 {
                let batches = try TestData.epoch(loader, epoch)
                XCTAssertEqual(batches.count, 5)                         // 35 samples: 4 × 8 + 3
                XCTAssertEqual(batches.last!.0.count, 3)
                if epoch == 0 {
                    if let reference {
                        XCTAssertEqual(batches.map { $0.0 }, reference.map { $0.0 }, "threads \(threads)")
                        XCTAssertEqual(batches.map { $0.1 }, reference.map { $0.1 })
                        XCTAssertTrue(zip(batches, reference).allSatisfy { $0.2 == $1.2 }, "pixels differ with \(threads) threads")
                    } else { reference = batches }
                }
            }
        }
    }

    /// The data wait the training loop reports: the time `next()` spent blocked or decoding. Without
    /// prefetch threads every decode is a wait; with them, a consumer slower than the loader waits for
    /// less than the decoding took (after the first batch the next one is already there).
    func testWaitSecondsCountsTheTimeNextBlocks() throws {
        let ds = PrefixDataset(try imagenette(size: 64, augPlus: false), count: 48)
        let sampler = DistributedSampler(count: 48, shuffle: true, seed: 2)
        let started = Date()
        let direct = BatchLoader(dataset: ds, sampler: sampler, batchSize: 8, augment: true, seed: 3, threads: 0).batches(epoch: 0)
        while try direct.next() != nil {}
        let decoding = direct.waitSeconds
        XCTAssertGreaterThan(decoding, 0)
        XCTAssertLessThanOrEqual(decoding, Date().timeIntervalSince(started))
        let prefetched = BatchLoader(dataset: ds, sampler: sampler, batchSize: 8, augment: true, seed: 3, threads: 2).batches(epoch: 0)
        var last = 0.0
        while try prefetched.next() != nil {
            XCTAssertGreaterThanOrEqual(prefetched.waitSeconds, last)
            last = prefetched.waitSeconds
            Thread.sleep(forTimeInterval: decoding / 3)   // a slow training step (2× a batch's decode): the loader gets ahead
        }
        XCTAssertLessThan(prefetched.waitSeconds, decoding, "the prefetched epoch waited as long as decoding took")
    }

    func testResumeFromABatchAndRecycledBatchObjects() throws {
        let ds = PrefixDataset(try imagenette(size: 36, augPlus: false), count: 40)
        let loader = BatchLoader(dataset: ds, sampler: DistributedSampler(count: 40, shuffle: true, seed: 2),
                                 batchSize: 4, augment: true, seed: 3, threads: 2)
        let all = try TestData.epoch(loader, 1)
        var objects = Set<ObjectIdentifier>()
        var tail: [([Int], [Float])] = []
        try loader.forEachBatch(epoch: 1, from: 6) { b, batch in
            objects.insert(ObjectIdentifier(batch))
            tail.append((batch.indices, batch.images.array))
        }
        XCTAssertEqual(tail.count, 4)
        XCTAssertTrue(zip(tail, all[6...]).allSatisfy { $0.0 == $1.0 && $0.1 == $1.2 })
        XCTAssertLessThanOrEqual(objects.count, 3)                     // threads + 1 batches, reused
    }

    func testStoppingEarlyAndErrorsDoNotHang() throws {
        let ds = PrefixDataset(try imagenette(size: 36, augPlus: false), count: 64)
        struct Stop: Error {}
        for threads in [1, 3] {
            let loader = BatchLoader(dataset: ds, sampler: DistributedSampler(count: 64, shuffle: true, seed: 2),
                                     batchSize: 4, augment: true, seed: 3, threads: threads)
            var seen = 0
            XCTAssertThrowsError(try loader.forEachBatch(epoch: 0) { b, _ in seen += 1; if b == 2 { throw Stop() } })
            XCTAssertEqual(seen, 3)
            // The loader is usable again afterwards.
            XCTAssertEqual(try TestData.epoch(loader, 0).count, 16)
        }
    }

    /// Evaluation over 2 ranks counts each CIFAR-10 test image exactly once (no padding).
    func testEvaluationOverTwoRanksCoversCIFAR10TestOnce() throws {
        let val = try openData("imagefolder:" + (try TestData.require(TestData.cifar10))).val
        XCTAssertEqual(val.count, 10000)
        var seen = [Int](repeating: 0, count: 10000)
        var perClass = [Int](repeating: 0, count: 10)
        var perRank: [Int] = []
        for rank in 0..<2 {
            let loader = BatchLoader(dataset: val, sampler: .evaluation(count: val.count, worldSize: 2, rank: rank),
                                     batchSize: 256, augment: false, seed: 1, threads: 1)
            XCTAssertEqual(loader.batchesPerEpoch, 20)
            var n = 0
            try loader.forEachBatch(epoch: 0) { _, batch in
                for (i, label) in zip(batch.indices, batch.labels) {
                    seen[i] += 1; perClass[label] += 1
                    XCTAssertEqual(label, val.label(i))
                }
                n += batch.size
            }
            perRank.append(n)
        }
        XCTAssertEqual(perRank, [5000, 5000])
        XCTAssertTrue(seen.allSatisfy { $0 == 1 })
        XCTAssertEqual(perClass, [Int](repeating: 1000, count: 10))
    }
}

/// A data set that counts its loads, to see what a loader decodes.
private final class CountingDataset: Dataset, @unchecked Sendable {
    let name = "counting", count = 64, numClasses = 2, classNames = ["a", "b"]
    let sampleShape = (height: 2, width: 2, channels: 1)
    let normalization = Normalization(mean: [0, 0, 0], std: [1, 1, 1])
    private let lock = NSLock()
    private var loaded: Set<Int> = []
    var loads: Set<Int> { lock.withLock { loaded } }
    func label(_ index: Int) -> Int { index % 2 }
    func load(_ index: Int, augment: Bool, rng: inout RandomStream, into out: UnsafeMutablePointer<Float>) throws {
        lock.withLock { _ = loaded.insert(index) }
        out.update(repeating: Float(index), count: 4)
    }
}

final class EpochIteratorTests: XCTestCase {
    /// `until` bounds what is decoded (the training loop's --max-steps, visualize's rows), with prefetch
    /// threads too; leaving the iterator early stops them.
    func testNoBatchPastUntilIsDecodedAndTheLoopCanLeave() throws {
        for threads in [0, 1, 3] {
            let ds = CountingDataset()
            let loader = BatchLoader(dataset: ds, sampler: DistributedSampler(count: 64, shuffle: false, seed: 1),
                                     batchSize: 4, augment: false, seed: 1, threads: threads)
            let batches = loader.batches(epoch: 0, from: 2, until: 5)
            var seen: [Int] = []
            while let (b, batch) = try batches.next() { seen.append(b); XCTAssertEqual(batch.indices, Array(4 * b..<4 * b + 4)) }
            XCTAssertEqual(seen, [2, 3, 4], "threads \(threads)")
            XCTAssertEqual(ds.loads, Set(8..<20), "threads \(threads): decoded only batches 2…4")
            XCTAssertNil(try batches.next())

            let early = loader.batches(epoch: 1)
            _ = try early.next()
            early.close()                 // the workers stop; at most the prefetch window was decoded
            XCTAssertLessThanOrEqual(ds.loads.subtracting(8..<20).count, 4 * (threads + 2), "threads \(threads)")
            XCTAssertNil(try early.next())
        }
    }
}
