import Foundation
import XCTest
import Distributed
import Kernels
@testable import Training

/// The trainer over several ranks without mpirun: ranks as threads of this process (`InProcessWorld`).
final class InProcessRanksTests: XCTestCase {
    private func config(out: String, mix: MixMethod = .rm) throws -> TrainConfig {
        var c = try DeterminismTests.config(seed: 5, out: out)
        c.model = "resnet8"
        c.trainLimit = 128          // 4 steps per epoch on 2 ranks of 16
        c.mix = mix
        c.batchSize = 16
        c.epochs = 2
        c.maxSteps = 6
        c.modelEma = 0.9                // the average too: checkpointed per rank, resumed bit-exact
        return c
    }

    private func bits(_ t: Trainer) -> [[UInt32]] {
        let ema = t.ema.map { $0.model.parameters.map(\.value) + $0.model.buffers.map(\.value) } ?? []
        return (t.model.parameters.map(\.value) + t.model.buffers.map(\.value) + ema).map { $0.array.map(\.bitPattern) }
    }

    /// Two ranks end with bit-identical weights, and rank 0 alone writes one metrics row per epoch with the
    /// job's world size; a run resumed from its mid-run checkpoint by two ranks ends where the unbroken one did.
    func testTwoRanksAgreeAndResumeExactly() throws {
        let tmp = NSTemporaryDirectory() + "inproc-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var unbroken = try config(out: tmp + "/a")
        unbroken.saveEvery = 3
        unbroken.keep = 5
        let results = InProcessWorld.run(size: 2) { comm -> [[UInt32]] in
            let t = try Trainer(config: unbroken, comm: comm)
            try t.run(log: { _ in })
            return self.bits(t)
        }
        let weights = try results.map { try $0.get() }
        XCTAssertEqual(weights[0], weights[1], "ranks disagree after training")
        let rows = try String(contentsOfFile: tmp + "/a/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(rows.count, 2)
        XCTAssertTrue(rows.allSatisfy { $0.contains("\"world_size\": 2") && $0.contains("\"val_top1_ema\": ") })

        var resumed = try config(out: tmp + "/b")
        resumed.resume = tmp + "/a/ckpt-000000003.rmck"
        let again = InProcessWorld.run(size: 2) { comm -> [[UInt32]] in
            let t = try Trainer(config: resumed, comm: comm)
            try t.run(log: { _ in })
            return self.bits(t)
        }
        XCTAssertEqual(try again[0].get(), weights[0], "the resumed run differs from the unbroken one")
        XCTAssertEqual(try again[1].get(), weights[0])
    }

    /// A rank that issues a collective the others do not is reported, naming the collectives.
    func testRanksInDifferentCollectivesAreReported() {
        let results = InProcessWorld.run(size: 2) { comm -> Void in
            var v = [1.0]
            try comm.allReduceSum(&v, comm.rank == 0 ? "first" : "second")
        }
        for r in results {
            XCTAssertThrowsError(try r.get()) { e in XCTAssertTrue("\(e)".contains("different collectives"), "\(e)") }
        }
    }
}
