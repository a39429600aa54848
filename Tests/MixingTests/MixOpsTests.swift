import XCTest
import Kernels
@testable import Mixing

/// Mixup / CutMix (timm batch mode) and the RecursiveMix op on images.
final class MixOpsTests: XCTestCase {
    func testMixupUsesReversedBatch() {
        for b in [4, 5] {                                   // odd: the middle sample is its own partner
            let x = Support.randomTensor([b, 3, 4, 2], seed: UInt64(b))
            let original = x.clone()
            BaselineMix.mixup(x, lam: 0.3)
            let per = 3 * 4 * 2
            for i in 0..<b { for e in 0..<per {
                let expected = 0.3 * original[i * per + e] + 0.7 * original[(b - 1 - i) * per + e]
                XCTAssertEqual(x[i * per + e], expected, accuracy: 1e-6)
            } }
        }
    }

    func testCutMixPastesBoxFromReversedBatch() {
        let b = 5
        let x = Support.randomTensor([b, 8, 9, 3], seed: 7)
        let original = x.clone()
        let box = Box(x1: 2, y1: 1, x2: 7, y2: 4)
        BaselineMix.cutmix(x, box: box)
        for n in 0..<b { for y in 0..<8 { for xx in 0..<9 { for c in 0..<3 {
            let inside = y >= 1 && y < 4 && xx >= 2 && xx < 7
            let src = inside ? b - 1 - n : n
            XCTAssertEqual(x[Support.at(x, n, y, xx, c)], original[Support.at(x, src, y, xx, c)])
        } } } }
    }

    func testPolicyDecisions() {
        var rng = RandomStream(seed: 1)
        let both = MixPolicy(mixupAlpha: 0.8, cutmixAlpha: 1.0, prob: 0.6, switchProb: 0.25)
        var counts: [MixKind: Int] = [:]
        let n = 40_000
        for _ in 0..<n {
            let d = both.decide(rng: &rng)
            counts[d.kind, default: 0] += 1
            if d.kind == .none { XCTAssertEqual(d.lam, 1) }
        }
        XCTAssertEqual(Double(counts[.none, default: 0]) / Double(n), 0.4, accuracy: 0.01)
        XCTAssertEqual(Double(counts[.cutmix, default: 0]) / Double(n), 0.6 * 0.25, accuracy: 0.01)
        XCTAssertEqual(Double(counts[.mixup, default: 0]) / Double(n), 0.6 * 0.75, accuracy: 0.01)

        let cutOnly = MixPolicy(mixupAlpha: 0, cutmixAlpha: 1)
        let mixOnly = MixPolicy(mixupAlpha: 1, cutmixAlpha: 0)
        for _ in 0..<1000 {
            XCTAssertEqual(cutOnly.decide(rng: &rng).kind, .cutmix)
            XCTAssertEqual(mixOnly.decide(rng: &rng).kind, .mixup)
        }
        XCTAssertEqual(MixPolicy(mixupAlpha: 0, cutmixAlpha: 0.3, cutmixMinMax: 0.2...0.8).cutmixAlpha, 1.0)
    }

    /// Whole batches through the mixer: targets are distributions with smoothing, λ is CutMix-corrected,
    /// and the targets use the final λ.
    func testBatchMixerTargets() {
        let k = 10, b = 6
        let labels = [0, 3, 3, 7, 9, 1]
        for policy in [MixPolicy(mixupAlpha: 1, cutmixAlpha: 1, prob: 0.8, labelSmoothing: 0.1),
                       MixPolicy(mixupAlpha: 0.2, cutmixAlpha: 0, labelSmoothing: 0.1, smoothingStyle: .rm),
                       MixPolicy(mixupAlpha: 0, cutmixAlpha: 0, cutmixMinMax: 0.3...0.7, labelSmoothing: 0.2)] {
            let mixer = BatchMixer(policy: policy)
            var rng = RandomStream(seed: 2)
            let targets = Tensor(shape: [b, k])
            let expected = Tensor(shape: [b, k])
            var kinds = Set<MixKind>()
            for _ in 0..<300 {
                let x = Support.randomTensor([b, 8, 8, 3], seed: 3)
                let out = mixer.apply(images: x, labels: labels, classes: k, targets: targets, rng: &rng)
                kinds.insert(out.kind)
                if let box = out.box { XCTAssertEqual(out.lam, 1 - Double(box.area) / 64) }
                for i in 0..<b {
                    var s = 0.0
                    for c in 0..<k { XCTAssertGreaterThanOrEqual(targets[i * k + c], 0); s += Double(targets[i * k + c]) }
                    XCTAssertEqual(s, 1, accuracy: 1e-6)
                }
                Targets.mixWithReversed(labels: labels, classes: k, smoothing: policy.labelSmoothing,
                                        style: policy.smoothingStyle, lam: out.lam, into: expected)
                XCTAssertEqual(targets.array, expected.array)
            }
            print("policy \(policy): kinds seen \(kinds.map(\.rawValue).sorted())")
        }
    }

    /// RM on images: first step unmixed, then the box holds the resized previous MIXED batch; legacy mode
    /// pastes into the transposed box and reports the untransposed RoI.
    func testRecursiveMixerImagesAndLegacyRoI() {
        for legacy in [false, true] {
            let mixer = RecursiveMixer(config: RecursiveMixConfig(alpha: 0.5, mode: .nearest, legacyTransposedRoI: legacy))
            let b = 2, s = 32, k = 4
            let history = HistoryBuffer(batch: b, height: s, width: s, channels: 1, classes: k)
            var rng = RandomStream(seed: legacy ? 5 : 6)
            let y = Tensor(shape: [b, k]), z = Tensor(shape: [b, k])
            var transposedSeen = false
            for t in 0..<30 {
                let x = Support.randomTensor([b, s, s, 1], seed: 1000 + UInt64(t))
                let clean = x.clone()
                let previous = history.isEmpty ? nil : history.images.clone()
                Targets.oneHot(labels: [0, 1], classes: k, into: y)
                let step = mixer.apply(images: x, targets: y, history: history, rng: &rng)
                if let step, let previous {
                    XCTAssertEqual(step.pasteBox, legacy ? step.roiBox.transposed : step.roiBox)
                    if step.pasteBox != step.roiBox { transposedSeen = true }
                    let expected = clean.clone()
                    pasteResized(history: previous, into: expected, box: step.pasteBox, mode: .nearest)
                    XCTAssertEqual(x.array, expected.array, "step \(t)")
                    XCTAssertEqual(step.lam, 1 - Double(step.pasteBox.area) / Double(s * s))
                } else {
                    XCTAssertEqual(t, 0)
                    XCTAssertEqual(x.array, clean.array)
                }
                history.store(images: x, labels: y, logits: z)
            }
            XCTAssertEqual(transposedSeen, legacy)
        }
    }
}
