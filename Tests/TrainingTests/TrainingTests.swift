import Foundation
import XCTest
import Kernels
import Models
import Optim
@testable import Training

final class ScheduleTests: XCTestCase {
    func testWarmupThenCosine() {
        let s = LRSchedule(kind: .cosine, baseLR: 0.4, warmupIterations: 4, totalIterations: 14, iterationsPerEpoch: 2)
        XCTAssertEqual(s.lr(at: 0), 0.1, accuracy: 1e-12)
        XCTAssertEqual(s.lr(at: 3), 0.4, accuracy: 1e-12)
        XCTAssertEqual(s.lr(at: 4), 0.4, accuracy: 1e-12)
        XCTAssertEqual(s.lr(at: 9), 0.2, accuracy: 1e-12)        // half-way through the cosine
        XCTAssertEqual(s.lr(at: 14), 0, accuracy: 1e-12)
    }

    func testStepSchedule() {
        let s = LRSchedule(kind: .step, baseLR: 0.1, warmupIterations: 0, totalIterations: 100,
                           iterationsPerEpoch: 10, milestones: [3, 6], decay: 0.1)
        XCTAssertEqual(s.lr(at: 29), 0.1, accuracy: 1e-12)
        XCTAssertEqual(s.lr(at: 30), 0.01, accuracy: 1e-12)
        XCTAssertEqual(s.lr(at: 60), 0.001, accuracy: 1e-12)
        XCTAssertEqual(LRSchedule.scaled(0.1, globalBatch: 512), 0.2, accuracy: 1e-12)
    }
}

final class SGDTests: XCTestCase {
    /// torch.optim.SGD's update written out by hand, including Nesterov and the BN/bias exemption.
    func testMatchesTorchUpdateRule() {
        for nesterov in [false, true] {
            let w = Layers.Parameter("conv.weight", shape: [3], kind: .weight)
            let b = Layers.Parameter("bn.bias", shape: [3], kind: .normShift)
            let sgd = SGD(parameters: [w, b], momentum: 0.9, weightDecay: 0.01, nesterov: nesterov, decayNormAndBias: false)
            var pw: [Double] = [1, -2, 3], pb: [Double] = [0.5, 0.5, -1]
            var vw = [Double](repeating: 0, count: 3), vb = [Double](repeating: 0, count: 3)
            for i in 0..<3 { w.value[i] = Float(pw[i]); b.value[i] = Float(pb[i]) }
            for step in 0..<3 {
                let gw: [Double] = [0.1, Double(step), -0.3], gb: [Double] = [1, -1, 0.25]
                for i in 0..<3 { w.grad[i] = Float(gw[i]); b.grad[i] = Float(gb[i]) }
                sgd.step(lr: 0.5)
                for i in 0..<3 {
                    let dw = gw[i] + 0.01 * pw[i]
                    vw[i] = 0.9 * vw[i] + dw
                    pw[i] -= 0.5 * (nesterov ? dw + 0.9 * vw[i] : vw[i])
                    let db = gb[i]                     // exempt from decay
                    vb[i] = 0.9 * vb[i] + db
                    pb[i] -= 0.5 * (nesterov ? db + 0.9 * vb[i] : vb[i])
                    XCTAssertEqual(Double(w.value[i]), pw[i], accuracy: 1e-5)
                    XCTAssertEqual(Double(b.value[i]), pb[i], accuracy: 1e-5)
                }
            }
        }
    }
}

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
