import Foundation
import XCTest
import Kernels
import Models
@testable import Training

import Layers

final class DeterminismTests: XCTestCase {
    static func config(seed: UInt64, out: String) throws -> TrainConfig {
        guard FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist") else {
            throw TestSetupError("dataset-fashion-mnist not installed: run launch/setup.sh")
        }
        var c = TrainConfig()
        c.seed = seed
        c.trainLimit = 256
        c.valLimit = 64
        c.batchSize = 32
        c.epochs = 1
        c.maxSteps = 4
        c.quiet = true
        c.out = out
        return c
    }

    func weights(_ t: Trainer) -> [[UInt32]] {
        (t.model.parameters.map { $0.value } + t.model.buffers.map { $0.value }).map { $0.array.map { $0.bitPattern } }
    }

    /// Same seed ⇒ the same bits in every parameter and BN buffer; another seed ⇒ different ones.
    func testSameSeedSameBits() throws {
        let tmp = NSTemporaryDirectory() + "det-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var results: [[[UInt32]]] = []
        for (i, seed) in [11, 11, 12].enumerated() {
            let t = try Trainer(config: Self.config(seed: UInt64(seed), out: tmp + "/\(i)"))
            try t.run(log: { _ in })
            XCTAssertEqual(t.step, 4)
            results.append(weights(t))
        }
        XCTAssertEqual(results[0], results[1])
        XCTAssertNotEqual(results[0], results[2])
    }

    /// The paper's other networks train with RecursiveMix end to end on 28×28 images (PyramidNet's
    /// ceil-mode shortcuts 28 → 14 → 7, DenseNet's floor-mode transitions 28 → 14 → 7 → 3): the consistency
    /// term of the RoI head on the last feature map is finite and positive, and a second run is bit-identical.
    func testPaperNetworksTrainWithRecursiveMix() throws {
        let tmp = NSTemporaryDirectory() + "nets-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        for model in ["pyramidnet11", "densenet13"] {
            var runs: [[[UInt32]]] = []
            for i in 0..<2 {
                var c = try Self.config(seed: 3, out: tmp + "/\(model)-\(i)")
                c.model = model
                c.mix = .rm
                c.maxSteps = 3
                c.batchSize = 16
                c.valLimit = 20
                let t = try Trainer(config: c)
                try t.run(log: { _ in })
                XCTAssertEqual(t.step, 3, model)
                runs.append(weights(t))
                let row = try String(contentsOfFile: c.out + "/metrics.jsonl", encoding: .utf8)
                let consistency = try XCTUnwrap(row.firstMatch(of: /"consistency_loss": ([0-9.e+-]+)/).flatMap { Double($0.1) })
                XCTAssertTrue(consistency.isFinite && consistency > 0, "\(model): consistency loss \(consistency)")
            }
            XCTAssertEqual(runs[0], runs[1], "\(model): two runs with one seed differ")
        }
    }
}

/// A missing test prerequisite is a failure, never a skip.
struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// The training ETA counts the epoch-end evaluations still to come: measured once one ran, estimated from the
/// training throughput before.
final class EvaluationETATests: XCTestCase {
    func testETACountsTheEvaluationsLeft() throws {
        let out = NSTemporaryDirectory() + "rmtrain-eta-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        var c = try DeterminismTests.config(seed: 1, out: out)
        c.epochs = 3
        c.maxSteps = nil
        let t = try Trainer(config: c)
        let run = try t.startRun(log: { _ in })
        XCTAssertEqual(t.trainLoader.batchesPerEpoch, 8)
        XCTAssertEqual(t.evaluationsLeft(after: -1, run), 3)
        XCTAssertEqual(t.evaluationsLeft(after: 0, run), 2)
        XCTAssertEqual(t.evaluationsLeft(after: 2, run), 0)
        XCTAssertEqual(t.evaluationSeconds(run, trainImagesPerSec: 32), 64.0 / (3 * 32), accuracy: 1e-12)
        run.evaluationSeconds = 5
        XCTAssertEqual(t.evaluationSeconds(run, trainImagesPerSec: 32), 5)
        c.maxSteps = 9                                  // stops one step into the second epoch, which is evaluated too
        let stopped = try Trainer(config: c)
        XCTAssertEqual(stopped.evaluationsLeft(after: -1, try stopped.startRun(log: { _ in })), 2)
    }
}
