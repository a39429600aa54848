import Foundation
import XCTest
import Distributed
@testable import Training

/// A requeued job on another number of ranks: 2 ranks for an epoch, then 3, then 1, each from the last epoch's end.
final class ElasticResumeTests: XCTestCase {
    /// 60 CIFAR-10 images of 4 classes, ResNet-8, batch 10 per rank.
    private func config(out: String) throws -> TrainConfig {
        var c = TrainConfig()
        c.data = "imagefolder:" + (try TestFolders.cifar(classes: 4, perClass: 15, test: self))
        c.model = "resnet8"
        c.batchSize = 10
        c.seed = 3
        c.quiet = true
        c.out = out
        return c
    }

    func testTwoThenThreeThenOneRank() throws {
        let tmp = NSTemporaryDirectory() + "elastic-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var c = try config(out: tmp)
        c.mix = .rm
        c.modelEma = 0.9
        for (epochs, ranks) in [(1, 2), (2, 3), (3, 1)] {
            c.epochs = epochs
            c.resume = epochs == 1 ? nil : "auto"
            let results = InProcessWorld.run(size: ranks) { comm -> (Int, [String], Set<Int>) in
                let t = try Trainer(config: c, comm: comm)
                try t.run(log: { _ in })
                return (t.step, t.resumeNotes, Set(t.trainLoader.sampler.indices(epoch: epochs - 1)))
            }
            let outcomes = try results.map { try $0.get() }
            // Steps are numbered in this world's steps per epoch; every image is in some rank's shard.
            XCTAssertEqual(outcomes[0].0, epochs * Int((60.0 / Double(ranks * 10)).rounded(.up)), "\(ranks) ranks")
            XCTAssertEqual(outcomes.reduce(Set<Int>()) { $0.union($1.2) }, Set(0..<60), "\(ranks) ranks")
            if epochs > 1 {
                XCTAssertTrue(outcomes[0].1.contains { $0.hasPrefix("resumed on \(ranks) rank(s) from a checkpoint of") }, "\(outcomes[0].1)")
            }
        }
        let rows = try String(contentsOfFile: tmp + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(rows.compactMap { $0["epoch"] as? Int }, [1, 2, 3])
        XCTAssertEqual(rows.compactMap { $0["world_size"] as? Int }, [2, 3, 1])
        XCTAssertEqual(Set(rows.compactMap { $0["val_images"] as? Int }).count, 1, "every epoch evaluates the same images")
    }

    func testMidEpochOnAnotherNumberOfRanksIsRefused() throws {
        let tmp = NSTemporaryDirectory() + "elastic-mid-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var c = try config(out: tmp)
        c.saveEvery = 2
        c.maxSteps = 2                  // 3 steps per epoch on 2 ranks: the checkpoint is mid-epoch
        _ = try InProcessWorld.run(size: 2) { comm in try Trainer(config: c, comm: comm).run(log: { _ in }) }.map { try $0.get() }
        c.resume = "auto"
        c.maxSteps = nil
        XCTAssertThrowsError(try Trainer(config: c).run(log: { _ in })) { e in
            XCTAssertTrue("\(e)".contains("written by 2 ranks in the middle of epoch 1, this run has 1"), "\(e)")
        }
    }
}
