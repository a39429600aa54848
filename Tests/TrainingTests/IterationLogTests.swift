import Foundation
import XCTest
import Distributed
@testable import Training

/// `--sched-on epochs` and `--log-interval` in a real run: the lr of each step is the RecursiveMix code's lr of
/// its epoch, a run stopped in the middle of an epoch and resumed logs the same rows as an unbroken one, and
/// the running means at an epoch's last step are the epoch's metrics.
final class IterationLogTests: XCTestCase {
    private func config(out: String) throws -> TrainConfig {
        var c = try DeterminismTests.config(seed: 4, out: out)
        c.model = "resnet8"
        c.trainLimit = 128
        c.valLimit = 16
        c.batchSize = 16                        // 8 steps per epoch
        c.epochs = 3
        c.maxSteps = nil
        c.lr = 0.2
        c.schedOn = .epochs
        c.warmupEpochs = 1
        c.lrSchedule = .step
        c.milestones = [2]
        c.logInterval = 1
        return c
    }

    private func rows(_ dir: String, _ file: String) throws -> [[String: Any]] {
        try String(contentsOfFile: dir + "/" + file, encoding: .utf8).split(separator: "\n")
            .map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    func testEpochScheduleAndRunningMeansResumeMidEpoch() throws {
        let tmp = NSTemporaryDirectory() + "iterlog-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let whole = try config(out: tmp + "/whole")
        try Trainer(config: whole).run(log: { _ in })
        var broken = try config(out: tmp + "/broken")
        broken.maxSteps = 12                    // stops after batch 4 of epoch 2
        try Trainer(config: broken).run(log: { _ in })
        XCTAssertEqual(try rows(broken.out, "iterations.jsonl").count, 12)
        broken.maxSteps = nil
        broken.resume = "auto"
        try Trainer(config: broken).run(log: { _ in })

        let a = try String(contentsOfFile: whole.out + "/iterations.jsonl", encoding: .utf8)
        let b = try String(contentsOfFile: broken.out + "/iterations.jsonl", encoding: .utf8)
        XCTAssertEqual(a, b, "the resumed run's rows differ from the unbroken run's")
        let steps = try rows(whole.out, "iterations.jsonl")
        XCTAssertEqual(steps.count, 24)
        for (n, row) in steps.enumerated() {
            XCTAssertEqual(row["epoch"] as? Int, n / 8 + 1)
            XCTAssertEqual(row["iteration"] as? Int, n % 8)
            XCTAssertEqual(row["step"] as? Int, n + 1)
            // utils.py:180-187 with --warmup 1, --schedule 2: epoch 1 at 0.2·1/2, epoch 2 at 0.2, epoch 3 at 0.02.
            XCTAssertEqual(try XCTUnwrap(row["lr"] as? Double), [0.1, 0.2, 0.2 * 0.1][n / 8], accuracy: 1e-15, "row \(n)")
        }
        // At an epoch's last step the running means cover the whole epoch: its metrics row's numbers.
        for (epoch, metrics) in try rows(whole.out, "metrics.jsonl").enumerated() {
            let last = steps[8 * epoch + 7]
            for key in ["train_loss", "train_top1", "train_top5"] {
                XCTAssertEqual(try XCTUnwrap(last[key] as? Double), try XCTUnwrap(metrics[key] as? Double), accuracy: 1e-12,
                               "epoch \(epoch + 1) \(key)")
            }
        }
    }

    /// On two ranks the running means cover both ranks' images (one all-reduce at each logged step), rank 0
    /// writes them, and an epoch's last row is its metrics row.
    func testRunningMeansCoverEveryRank() throws {
        let tmp = NSTemporaryDirectory() + "iterlog2-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var c = try config(out: tmp)
        c.epochs = 2                            // 4 steps per epoch: 128 images over 2 ranks of 16
        c.milestones = []
        for result in InProcessWorld.run(size: 2, { comm in try Trainer(config: c, comm: comm).run(log: { _ in }) }) {
            try result.get()
        }
        let steps = try rows(tmp, "iterations.jsonl")
        XCTAssertEqual(steps.map { $0["images"] as? Int }, [32, 64, 96, 128, 32, 64, 96, 128])
        for (epoch, metrics) in try rows(tmp, "metrics.jsonl").enumerated() {
            for key in ["train_loss", "train_top1", "train_top5"] {
                XCTAssertEqual(try XCTUnwrap(steps[4 * epoch + 3][key] as? Double), try XCTUnwrap(metrics[key] as? Double),
                               accuracy: 1e-12, "epoch \(epoch + 1) \(key)")
            }
        }
    }

    /// Rows every 100 steps by default on epochs (their --print_freq), none by default on updates; 0 turns it off.
    func testDefaultInterval() throws {
        var c = TrainConfig()
        XCTAssertEqual(c.iterationLogInterval, 0)
        c.schedOn = .epochs
        XCTAssertEqual(c.iterationLogInterval, 100)
        c.logInterval = 0
        XCTAssertEqual(c.iterationLogInterval, 0)
        c.schedOn = .updates
        c.logInterval = 7
        XCTAssertEqual(c.iterationLogInterval, 7)
    }
}
