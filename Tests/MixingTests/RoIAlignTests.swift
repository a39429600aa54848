import XCTest
import Kernels
@testable import Mixing

/// RoIAlign 1×1 (aligned, sampling −1) against the §9 golden values, against a per-sample-point port of
/// torchvision's loop, and its backward against central differences.
final class RoIAlignTests: XCTestCase {
    struct Golden { let size: Int; let scale: Double; let box: Box; let value: Double; let grid: (Int, Int) }

    /// §9 table: single-channel ramps f = size·y + x.
    static let golden: [Golden] = [
        Golden(size: 4, scale: 0.125, box: Box(x1: 5, y1: 3, x2: 21, y2: 19), value: 4.625, grid: (2, 2)),
        Golden(size: 4, scale: 0.125, box: Box(x1: 0, y1: 0, x2: 22, y2: 22), value: 4.444444, grid: (3, 3)),
        Golden(size: 4, scale: 0.125, box: Box(x1: 30, y1: 30, x2: 32, y2: 32), value: 15.0, grid: (1, 1)),
        Golden(size: 4, scale: 0.125, box: Box(x1: 10, y1: 10, x2: 12, y2: 12), value: 4.375, grid: (1, 1)),
        Golden(size: 4, scale: 0.125, box: Box(x1: 0, y1: 12, x2: 8, y2: 32), value: 8.888889, grid: (3, 1)),
        Golden(size: 8, scale: 0.25, box: Box(x1: 5, y1: 3, x2: 21, y2: 19), value: 20.75, grid: (4, 4)),
        Golden(size: 8, scale: 0.25, box: Box(x1: 0, y1: 0, x2: 22, y2: 22), value: 20.3125, grid: (6, 6)),
        Golden(size: 7, scale: 1.0 / 32, box: Box(x1: 33, y1: 50, x2: 191, y2: 208), value: 27.71875, grid: (5, 5)),
        Golden(size: 7, scale: 1.0 / 32, box: Box(x1: 0, y1: 0, x2: 158, y2: 158), value: 15.76, grid: (5, 5)),
    ]

    /// Per (sample, channel) multipliers: the op is linear, so out[n, c] = m[n][c]·golden.
    static let multipliers: [[Float]] = [[1, 2, -1], [0.5, 3, 10]]

    static func rampFeatures(size s: Int) -> Tensor {
        let m = multipliers
        let f = Tensor(shape: [m.count, s, s, m[0].count])
        for n in 0..<m.count {
            for y in 0..<s { for x in 0..<s { for c in 0..<m[0].count {
                f[Support.at(f, n, y, x, c)] = m[n][c] * Float(s * y + x)
            } } }
        }
        return f
    }

    func testGoldenValues() {
        let op = RoIAlign1x1()
        for g in Self.golden {
            let f = Self.rampFeatures(size: g.size)
            let out = op.forward(features: f, box: g.box, spatialScale: g.scale)
            XCTAssertEqual(out.shape, [2, 3])
            for n in 0..<2 {
                for c in 0..<3 {
                    let expected = Double(Self.multipliers[n][c]) * g.value
                    XCTAssertEqual(Double(out[n * 3 + c]), expected, accuracy: 2e-6 * max(1, abs(expected)),
                                   "box \(g.box) on \(g.size)×\(g.size), sample \(n) channel \(c)")
                }
            }
            var map: [Float] = []
            let grid = RoIAlign1x1.weights(height: g.size, width: g.size, box: g.box, spatialScale: g.scale, into: &map)
            XCTAssertEqual(grid.gridH, g.grid.0, "grid height for \(g.box)")
            XCTAssertEqual(grid.gridW, g.grid.1, "grid width for \(g.box)")
            // In-range samples' bilinear weights sum to 1 each, so the whole map sums to 1.
            XCTAssertEqual(Double(map.reduce(0, +)), 1, accuracy: 1e-6)
        }
    }

    /// Random maps, non-square, C not a multiple of 8, boxes inside and partly outside the image.
    func testMatchesPerSampleReference() {
        let f = Support.randomTensor([3, 5, 6, 19], seed: 11)
        let op = RoIAlign1x1()
        var rng = RandomStream(seed: 5, stream: 1)
        for trial in 0..<200 {
            let x1 = rng.int(below: 60), y1 = rng.int(below: 50)
            let box = Box(x1: x1, y1: y1, x2: x1 + 1 + rng.int(below: 48), y2: y1 + 1 + rng.int(below: 40))
            let out = op.forward(features: f, box: box, spatialScale: 0.125)
            for n in 0..<3 {
                for c in 0..<19 {
                    let ref = Support.referenceRoIAlign(f, n: n, channel: c, box: box, scale: 0.125)
                    XCTAssertEqual(Double(out[n * 19 + c]), ref, accuracy: 1e-5, "trial \(trial) box \(box) n \(n) c \(c)")
                }
            }
        }
    }

    func testFullyOutsideBoxGivesZeroAndNoGradient() {
        let f = Support.randomTensor([2, 4, 4, 5], seed: 3)
        let op = RoIAlign1x1()
        let out = op.forward(features: f, box: Box(x1: 40, y1: 40, x2: 64, y2: 64), spatialScale: 0.125)
        XCTAssertEqual(out.array, [Float](repeating: 0, count: 10))
        let dx = op.backward(Support.randomTensor([2, 5], seed: 4))
        XCTAssertEqual(dx.array, [Float](repeating: 0, count: f.count))
    }

    /// L = Σ out·R; dL/dF from backward(R) against central differences (exact up to rounding: L is linear).
    func testBackwardByFiniteDifferences() {
        let cases: [(size: (Int, Int), scale: Double, box: Box)] = [
            ((4, 4), 0.125, Box(x1: 0, y1: 0, x2: 22, y2: 22)),     // grid starts at −0.0417, clamped to 0
            ((4, 4), 0.125, Box(x1: 30, y1: 30, x2: 32, y2: 32)),   // bottom-right border: y_low ≥ H−1 rule
            ((4, 4), 0.125, Box(x1: 0, y1: 12, x2: 8, y2: 32)),     // left and bottom borders
            ((4, 4), 0.125, Box(x1: 5, y1: 3, x2: 21, y2: 19)),
            ((4, 4), 0.125, Box(x1: 24, y1: 0, x2: 48, y2: 32)),    // partly outside: one sample column skipped
            ((8, 8), 0.25, Box(x1: 0, y1: 0, x2: 32, y2: 32)),      // whole image
            ((7, 7), 1.0 / 32, Box(x1: 33, y1: 50, x2: 191, y2: 208)),
            ((5, 6), 0.125, Box(x1: 7, y1: 1, x2: 45, y2: 39)),     // non-square map
        ]
        let op = RoIAlign1x1()
        for (k, tc) in cases.enumerated() {
            let f = Support.randomTensor([2, tc.size.0, tc.size.1, 11], seed: 100 + UInt64(k))
            let r = Support.randomTensor([2, 11], seed: 200 + UInt64(k))
            _ = op.forward(features: f, box: tc.box, spatialScale: tc.scale)
            let analytic = op.backward(r).array
            func loss() -> Double {
                let out = op.forward(features: f, box: tc.box, spatialScale: tc.scale)
                var s = 0.0
                for i in 0..<out.count { s += Double(out[i]) * Double(r[i]) }
                return s
            }
            var maxErr = 0.0, maxNum = 0.0
            let eps: Float = 1e-2
            for i in 0..<f.count {
                let v = f[i]
                f[i] = v + eps; let lp = loss()
                f[i] = v - eps; let lm = loss()
                f[i] = v
                let num = (lp - lm) / (Double(v + eps) - Double(v - eps))
                maxNum = max(maxNum, abs(num))
                maxErr = max(maxErr, abs(num - Double(analytic[i])))
            }
            XCTAssertGreaterThan(maxNum, 1e-3, "case \(k) \(tc.box): vacuous gradient check")
            XCTAssertLessThan(maxErr / maxNum, 1e-3, "case \(k) \(tc.box): backward disagrees with finite differences")
        }
    }

    /// Reusing the op with another box must not leave stale gradient.
    func testBackwardReuse() {
        let f = Support.randomTensor([2, 4, 4, 9], seed: 21)
        let dy = Support.randomTensor([2, 9], seed: 22)
        let reused = RoIAlign1x1()
        _ = reused.forward(features: f, box: Box(x1: 0, y1: 0, x2: 32, y2: 32), spatialScale: 0.125)
        _ = reused.backward(dy)
        let box = Box(x1: 30, y1: 2, x2: 32, y2: 10)
        _ = reused.forward(features: f, box: box, spatialScale: 0.125)
        let a = reused.backward(dy).array
        let fresh = RoIAlign1x1()
        _ = fresh.forward(features: f, box: box, spatialScale: 0.125)
        XCTAssertEqual(a, fresh.backward(dy).array)
    }
}
