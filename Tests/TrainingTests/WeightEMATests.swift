import Foundation
import XCTest
import Kernels
import Models
@testable import Training

/// `--model-ema`: timm's ModelEmaV3 decay schedule and update.
final class WeightEMATests: XCTestCase {
    func testDecayFollowsTimm() {
        // get_decay: step 1 → 0 (a copy); then the decay, or with warm-up min(decay, 1 − (1 + (t − 1))^(−2/3)).
        XCTAssertEqual(WeightEMA.decay(at: 1, decay: 0.9998, warmup: false), 0)
        XCTAssertEqual(WeightEMA.decay(at: 2, decay: 0.9998, warmup: false), 0.9998)
        XCTAssertEqual(WeightEMA.decay(at: 9, decay: 0.9998, warmup: true), 1 - pow(9.0, -2.0 / 3), accuracy: 1e-15)
        XCTAssertEqual(WeightEMA.decay(at: 9, decay: 0.9998, warmup: true), 0.76888, accuracy: 1e-5)
        XCTAssertEqual(WeightEMA.decay(at: 1_000_000, decay: 0.9998, warmup: true), 0.9998)
    }

    func testUpdateIsTorchsLerpOfParametersAndBuffers() throws {
        let live = try XCTUnwrap(Networks.make("resnet8", inChannels: 1, numClasses: 3))
        live.initialize(seed: 1)
        let ema = try WeightEMA(of: live, inChannels: 1, decay: 0.75, warmup: false)
        let p = live.parameters[0].value, b = live.buffers[0].value
        let p0 = p.array, b0 = b.array
        for i in 0..<p.count { p[i] += 1 }
        for i in 0..<b.count { b[i] += 2 }
        ema.update(step: 1)                          // decay 0: a copy
        let e1 = ema.model.parameters[0].value.array
        XCTAssertEqual(e1, p.array)
        XCTAssertNotEqual(e1, p0)
        for i in 0..<p.count { p[i] += 4 }
        ema.update(step: 2)                          // e + 0.25·(w − e), in Float as torch's lerp_
        XCTAssertEqual(ema.model.parameters[0].value.array, zip(e1, p.array).map { e, w in e + Float(0.25) * (w - e) })
        XCTAssertEqual(ema.model.buffers[0].value.array, b0.map { $0 + 2 })
    }
}
