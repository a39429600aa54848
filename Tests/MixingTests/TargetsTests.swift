import XCTest
import Kernels
@testable import Mixing

/// Soft targets, the RecursiveMix label recursion, and the history buffer.
final class TargetsTests: XCTestCase {
    func assertRowsAreDistributions(_ y: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let b = y.shape[0], k = y.shape[1]
        for i in 0..<b {
            var s = 0.0
            for c in 0..<k {
                XCTAssertGreaterThanOrEqual(y[i * k + c], 0, "\(what): row \(i) class \(c) negative", file: file, line: line)
                s += Double(y[i * k + c])
            }
            XCTAssertEqual(s, 1, accuracy: 1e-6, "\(what): row \(i) sums to \(s)", file: file, line: line)
        }
    }

    func testSmoothingConventions() {
        let y = Tensor(shape: [1, 1])
        Targets.oneHot(labels: [2, 0], classes: 5, smoothing: 0.1, style: .rm, into: y)
        XCTAssertEqual(y.shape, [2, 5])
        XCTAssertEqual(y.array, [0.025, 0.025, 0.9, 0.025, 0.025, 0.9, 0.025, 0.025, 0.025, 0.025])
        Targets.oneHot(labels: [2, 0], classes: 5, smoothing: 0.1, style: .timm, into: y)
        XCTAssertEqual(y.array[0], 0.02, accuracy: 1e-7)
        XCTAssertEqual(y.array[2], 0.92, accuracy: 1e-7)
        Targets.oneHot(labels: [1], classes: 3, smoothing: 0, into: y)
        XCTAssertEqual(y.array, [0, 1, 0])
        for style in SmoothingStyle.allCases {
            Targets.oneHot(labels: [0, 9, 4, 4], classes: 10, smoothing: 0.3, style: style, into: y)
            assertRowsAreDistributions(y, "one-hot \(style)")
        }
    }

    func testMixWithReversed() {
        let y = Tensor(shape: [4, 3])
        Targets.mixWithReversed(labels: [0, 1, 2, 0], classes: 3, smoothing: 0, lam: 0.7, into: y)
        XCTAssertEqual(y.array, [1, 0, 0,  0, 0.7, 0.3,  0, 0.3, 0.7,  1, 0, 0], "row 0 and 3 share class 0")
        for style in SmoothingStyle.allCases {
            for lam in [0.0, 0.13, 0.5, 0.99, 1.0] {
                Targets.mixWithReversed(labels: [3, 1, 4, 1, 5, 9, 2], classes: 10, smoothing: 0.1, style: style,
                                        lam: lam, into: y)
                assertRowsAreDistributions(y, "mixup target \(style) lam \(lam)")
            }
        }
    }

    /// Hand-built recursion: after steps with known λ_t, image i's label carries lam_t·Π_{s>t}(1 − lam_s) of
    /// the label of batch t (lam_0 = 1 for the first, unmixed, batch).
    func testRecursiveLabelWeights() {
        let k = 6, b = 3
        let lams = [1.0, 0.8, 0.55, 0.9, 0.7]               // batch t uses classes t (so weights are readable)
        let y = Tensor(shape: [b, k]), history = Tensor(shape: [b + 2, k])   // history may hold more rows
        for (t, lam) in lams.enumerated() {
            Targets.oneHot(labels: [Int](repeating: t, count: b), classes: k, into: y)
            if t > 0 { Targets.mix(y, with: history, lam: lam) }
            history.reshape([b + 2, k])
            history.data.update(from: y.data, count: b * k)
        }
        for t in 0..<lams.count {
            var w = lams[t]
            for s in (t + 1)..<lams.count { w *= 1 - lams[s] }
            for i in 0..<b { XCTAssertEqual(Double(y[i * k + t]), w, accuracy: 1e-6, "batch \(t) weight, row \(i)") }
        }
        XCTAssertEqual(Double(y[5]), 0, accuracy: 0)
        assertRowsAreDistributions(y, "recursive labels")
    }

    /// The whole op over several steps: RecursiveMixer + HistoryBuffer, with smoothing; weights follow the
    /// λ the mixer returned, and rows stay distributions.
    func testRecursiveMixerLabelsOverSteps() {
        let k = 8, b = 4, s = 0.2
        let history = HistoryBuffer(batch: b, height: 16, width: 16, channels: 3, classes: k)
        let mixer = RecursiveMixer()
        var rng = RandomStream(seed: 77)
        let x = Tensor(shape: [b, 16, 16, 3]), y = Tensor(shape: [b, k]), logits = Tensor(shape: [b, k])
        var lams: [Double] = []
        let steps = 6
        for t in 0..<steps {
            x.fill(Float(t))
            Targets.oneHot(labels: [Int](repeating: t, count: b), classes: k, smoothing: s, style: .rm, into: y)
            let step = mixer.apply(images: x, targets: y, history: history, rng: &rng)
            XCTAssertEqual(step == nil, t == 0, "only the first step of an epoch is unmixed")
            lams.append(step?.lam ?? 1)
            assertRowsAreDistributions(y, "step \(t)")
            history.store(images: x, labels: y, logits: logits)
        }
        // Expected: Σ_t w_t·smooth(onehot(t)), w_t = lam_t·Π_{u>t}(1 − lam_u).
        let (on, off) = SmoothingStyle.rm.values(classes: k, smoothing: s)
        var expected = [Double](repeating: 0, count: k)
        for t in 0..<steps {
            var w = lams[t]
            for u in (t + 1)..<steps { w *= 1 - lams[u] }
            for c in 0..<k { expected[c] += w * Double(c == t ? on : off) }
        }
        for i in 0..<b { for c in 0..<k { XCTAssertEqual(Double(y[i * k + c]), expected[c], accuracy: 1e-5) } }
        XCTAssertTrue(lams.dropFirst().contains { $0 < 1 }, "some step must have mixed")
    }

    func testHistoryBufferStoresCopies() {
        let h = HistoryBuffer(batch: 4, height: 2, width: 2, channels: 1, classes: 3)
        XCTAssertTrue(h.isEmpty)
        let x = Support.randomTensor([4, 2, 2, 1], seed: 1), y = Support.randomTensor([4, 3], seed: 2)
        let z = Support.randomTensor([4, 3], seed: 3)
        h.store(images: x, labels: y, logits: z)
        XCTAssertEqual(h.count, 4)
        let saved = (x.array, y.array, z.array)
        x.fill(0); y.fill(0); z.fill(0)
        XCTAssertEqual(h.images.array, saved.0)
        XCTAssertEqual(h.labels.array, saved.1)
        XCTAssertEqual(h.logits.array, saved.2)
        // A smaller last batch.
        let x2 = Support.randomTensor([2, 2, 2, 1], seed: 4)
        h.store(images: x2, labels: Tensor(shape: [2, 3]), logits: Tensor(shape: [2, 3]))
        XCTAssertEqual(h.count, 2)
        XCTAssertEqual(h.images.shape, [2, 2, 2, 1])
        h.clear()
        XCTAssertTrue(h.isEmpty)
    }

    func testSoftmaxOfHistoryLogits() {
        let z = Tensor(shape: [3, 3], values: [0, 0, 0,  1000, 0, -1000,  1, 2, 3])
        let p = Tensor(shape: [1])
        Targets.softmax(logits: z, rows: 2, into: p)
        XCTAssertEqual(p.shape, [2, 3])
        XCTAssertEqual(p.array[0], 1.0 / 3, accuracy: 1e-7)
        XCTAssertEqual(p.array[3], 1, accuracy: 1e-7)
        XCTAssertEqual(p.array[5], 0, accuracy: 1e-7)
        assertRowsAreDistributions(p, "softmax")
    }
}
