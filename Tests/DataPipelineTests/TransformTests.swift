import Foundation
import XCTest
import Kernels
@testable import DataPipeline

/// The colour augmentation (--aug-plus) against a direct evaluation of RECURSIVEMIX_SPEC §4.3's formulas,
/// and the evaluation geometry.
final class TransformTests: XCTestCase {
    func testColourJitterAndLightingFollowTheSpec() {
        let t = ImageTransform(size: 40, augPlus: true)
        let n = 40 * 40
        var rng = RandomStream(seed: 8)
        let image = (0..<(3 * n)).map { _ in Float(rng.uniform()) }
        for trial in 0..<20 {
            var r = RandomStream(seed: 2, stream: UInt64(trial))
            let plan = t.plan(width: 100, height: 80, augment: true, rng: &r)
            XCTAssertTrue(plan.colour)
            XCTAssertEqual(Set([plan.jitterOrder.x, plan.jitterOrder.y, plan.jitterOrder.z]), [0, 1, 2])
            XCTAssertTrue((0..<3).allSatisfy { abs(plan.jitter[$0]) <= 0.4 })
            var out = image
            out.withUnsafeMutableBufferPointer {
                t.applyColour(plan, $0.baseAddress!, pixels: n, mean: SIMD3(0.485, 0.456, 0.406), std: SIMD3(0.229, 0.224, 0.225))
            }
            // Reference, in Double: img.lerp(target, α) in the plan's order, then lighting, then Normalize.
            var img = image.map(Double.init)
            let w = [0.2989, 0.587, 0.114]
            for k in 0..<3 {
                let which = Int(plan.jitterOrder[k]), a = Double(plan.jitter[which])
                let grey = (0..<n).map { p in (0..<3).reduce(0.0) { $0 + w[$1] * img[3 * p + $1] } }
                let mean = grey.reduce(0, +) / Double(n)
                for p in 0..<n { for c in 0..<3 {
                    let target = which == 0 ? 0 : (which == 1 ? mean : grey[p])
                    img[3 * p + c] += a * (target - img[3 * p + c])
                } }
            }
            let m = [0.485, 0.456, 0.406], s = [0.229, 0.224, 0.225]
            for i in 0..<(3 * n) {
                let want = (img[i] + Double(plan.lighting[i % 3]) - m[i % 3]) / s[i % 3]
                XCTAssertEqual(Double(out[i]), want, accuracy: 1e-4)
            }
            // Lighting: eigvec · (α ⊙ eigval) with α ~ N(0, 0.1): small shifts.
            XCTAssertTrue((0..<3).allSatisfy { abs(plan.lighting[$0]) < 0.2 })
        }
    }

    func testEvaluationGeometry() {
        let t = ImageTransform(size: 224)
        var rng = RandomStream(seed: 1)
        let p = t.plan(width: 500, height: 375, augment: false, rng: &rng)
        // Resize(256): short side 256, long side int(256 · 500 / 375) = 341; CenterCrop(224).
        XCTAssertEqual([p.outW, p.outH, p.firstX, p.firstY], [341, 256, 58, 16])
        XCTAssertFalse(p.flip)
        XCTAssertEqual(rng.state, RandomStream(seed: 1).state, "evaluation draws no random numbers")
        XCTAssertEqual(ImageTransform(size: 32).pipeline, .cifar)
        XCTAssertEqual(ImageTransform(size: 33).pipeline, .imageNet)
        XCTAssertEqual(ImageTransform(size: 32).normalization.std, Normalization.cifar.std)
    }
}
