import Foundation
import Layers
import Optim
import XCTest

/// The learning-rate schedules and SGD against their definitions (torch.optim.SGD, timm's warm-up + cosine).
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

    /// The RecursiveMix code's adjust_learning_rate (utils.py:177-196), transcribed: `epoch` is 1-based
    /// (main.py:171), warm-up and milestones in whole epochs.
    static func theirs(epoch: Int, base: Double, warmup: Int, scheduler: String, schedule: [Int], decay: Double,
                       epochs: Int) -> Double {
        if epoch <= warmup { return base * (Double(epoch) / Double(warmup + 1)) }
        if scheduler == "step" {
            var exp = 0
            for m in schedule where epoch > m { exp += 1 }
            return base * pow(decay, Double(exp))
        }
        return base * 0.5 * (1 + cos(Double(epoch - 1) * Double.pi / Double(epochs)))
    }

    /// On epochs, every iteration of epoch e (1-based) runs at their lr of e: warm-up, step and cosine, with and
    /// without warm-up, so a run resumed at any iteration of an epoch continues at that epoch's lr.
    func testOnEpochsIsTheirAdjustLearningRate() {
        let perEpoch = 7, epochs = 12
        for (kind, warmup, milestones) in [(LRSchedule.Kind.step, 3, [5, 9]), (.cosine, 3, []), (.cosine, 0, []), (.step, 0, [1, 11])] {
            let s = LRSchedule(kind: kind, on: .epochs, baseLR: 0.25, warmupIterations: warmup * perEpoch,
                               totalIterations: epochs * perEpoch, iterationsPerEpoch: perEpoch, milestones: milestones, decay: 0.1)
            for it in 0..<(epochs * perEpoch) {
                let e = it / perEpoch + 1
                let want = Self.theirs(epoch: e, base: 0.25, warmup: warmup, scheduler: kind == .step ? "step" : "cos",
                                       schedule: milestones, decay: 0.1, epochs: epochs)
                XCTAssertEqual(s.lr(at: it), want, accuracy: 1e-15, "\(kind) warm-up \(warmup), iteration \(it) (epoch \(e))")
                XCTAssertEqual(s.lr(at: it), s.lr(epoch: e))
            }
            // A schedule rebuilt by a resumed process, resumed in the middle of epoch 4: the same lr as the
            // unbroken run's at that iteration and to the end.
            let resumed = LRSchedule(kind: kind, on: .epochs, baseLR: 0.25, warmupIterations: warmup * perEpoch,
                                     totalIterations: epochs * perEpoch, iterationsPerEpoch: perEpoch, milestones: milestones, decay: 0.1)
            for it in (3 * perEpoch + 4)..<(epochs * perEpoch) { XCTAssertEqual(resumed.lr(at: it), s.lr(at: it)) }
        }
        // The warm-up never reaches base inside it: epoch 1 of 5 runs at base/6, epoch 5 at 5·base/6.
        let t1 = LRSchedule(kind: .step, on: .epochs, baseLR: 0.25, warmupIterations: 5 * 782, totalIterations: 300 * 782,
                            iterationsPerEpoch: 782, milestones: [150, 225], decay: 0.1)
        XCTAssertEqual(t1.lr(at: 0), 0.25 / 6, accuracy: 1e-15)
        XCTAssertEqual(t1.lr(at: 5 * 782 - 1), 0.25 * 5 / 6, accuracy: 1e-15)
    }

    /// The lr their published logs print at each epoch's first line (%.6f): CIFAR-10 Table 1
    /// (log_cifar10_300epoch_pyramidnet_rm_97.60_top1_acc.log, 782 iterations per epoch) and ImageNet
    /// (log_imagenet_300epoch_r50_rm_79.20_top1_acc.log, 2503 per epoch).
    func testOnEpochsPrintsTheirLogsLR() {
        let cifar = LRSchedule(kind: .step, on: .epochs, baseLR: 0.25, warmupIterations: 5 * 782, totalIterations: 300 * 782,
                               iterationsPerEpoch: 782, milestones: [150, 225], decay: 0.1)
        for (epoch, printed) in [(1, "0.041667"), (5, "0.208333"), (6, "0.250000"), (150, "0.250000"), (151, "0.025000"),
                                 (225, "0.025000"), (226, "0.002500"), (300, "0.002500")] {
            XCTAssertEqual(String(format: "%.6f", cifar.lr(at: (epoch - 1) * 782 + 400)), printed, "CIFAR-10 epoch \(epoch)")
        }
        let imagenet = LRSchedule(kind: .cosine, on: .epochs, baseLR: 0.2, warmupIterations: 5 * 2503, totalIterations: 300 * 2503,
                                  iterationsPerEpoch: 2503)
        for (epoch, printed) in [(1, "0.033333"), (5, "0.166667"), (6, "0.199863"), (150, "0.101047"), (151, "0.100000"),
                                 (226, "0.029289"), (300, "0.000005")] {
            XCTAssertEqual(String(format: "%.6f", imagenet.lr(at: (epoch - 1) * 2503)), printed, "ImageNet epoch \(epoch)")
        }
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
