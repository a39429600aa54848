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
