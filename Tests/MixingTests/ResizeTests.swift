import XCTest
import Kernels
@testable import Mixing

/// Legacy nearest indices (§1.5, §9), bilinear align-corners taps, and the in-place paste.
final class ResizeTests: XCTestCase {
    func testLegacyNearestGoldenIndices() {
        XCTAssertEqual(legacyNearestSourceIndices(input: 32, output: 22),
                       [0, 1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 18, 20, 21, 23, 24, 26, 27, 29, 30])
        XCTAssertEqual(legacyNearestSourceIndices(input: 32, output: 16), Array(stride(from: 0, to: 32, by: 2)))
        XCTAssertEqual(legacyNearestSourceIndices(input: 32, output: 2), [0, 16])
        XCTAssertEqual(legacyNearestSourceIndices(input: 32, output: 11), [0, 2, 5, 8, 11, 14, 17, 20, 23, 26, 29])
        XCTAssertEqual(legacyNearestSourceIndices(input: 7, output: 7), Array(0..<7))

        let big = legacyNearestSourceIndices(input: 224, output: 158)
        XCTAssertEqual(big.count, 158)
        XCTAssertEqual(Array(big.prefix(12)), [0, 1, 2, 4, 5, 7, 8, 9, 11, 12, 14, 15])
        XCTAssertEqual(Array(big.suffix(4)), [218, 219, 221, 222])
        // The whole list, from the formula min(floor(d·Float(224)/Float(158)), 223) in float32.
        let scale = Float(224) / Float(158)
        XCTAssertEqual(big, (0..<158).map { min(Int((Float($0) * scale).rounded(.down)), 223) })
        // Strictly increasing, steps of 1 or 2 (158/224 ≈ 0.705 keeps ~70 % of the rows).
        for i in 1..<158 { XCTAssertTrue(big[i] - big[i - 1] == 1 || big[i] - big[i - 1] == 2) }
    }

    /// Float32 matters: a Double scale gives a different index for some sizes. The function must agree with
    /// the float32 computation for every box side that RecursiveMix can produce at 32 and 224 px.
    func testNearestUsesFloat32Products() {
        // Where float32 and exact arithmetic disagree (numpy float32 port; exact would give 126 and 112):
        // Float(224)/Float(48) = 4.6666665, ·27 = 125.99999 → 125.
        XCTAssertEqual(legacyNearestSourceIndices(input: 224, output: 48)[27], 125)
        XCTAssertEqual(legacyNearestSourceIndices(input: 224, output: 46)[23], 111)
        for input in [32, 224] {
            for output in 1...input {
                let s = Float(input) / Float(output)
                let expected = (0..<output).map { min(Int((Float($0) * s).rounded(.down)), input - 1) }
                XCTAssertEqual(legacyNearestSourceIndices(input: input, output: output), expected, "\(input)→\(output)")
            }
        }
    }

    func testBilinearAlignCornersTaps() {
        let taps = bilinearAlignCornersTaps(input: 5, output: 3)   // src = 0, 2, 4
        XCTAssertEqual(taps.map(\.i0), [0, 2, 4])
        XCTAssertEqual(taps.map(\.i1), [1, 3, 4])
        XCTAssertEqual(taps.map(\.w1), [0, 0, 0])
        let t = bilinearAlignCornersTaps(input: 4, output: 3)      // src = 0, 1.5, 3
        XCTAssertEqual(t[1], LinearTap(i0: 1, i1: 2, w0: 0.5, w1: 0.5))
        XCTAssertEqual(t[2], LinearTap(i0: 3, i1: 3, w0: 1, w1: 0))
        XCTAssertEqual(bilinearAlignCornersTaps(input: 9, output: 1), [LinearTap(i0: 0, i1: 1, w0: 1, w1: 0)])
    }

    /// The pasted region equals the legacy-nearest resize of the whole history image (index-aligned, history
    /// sliced to the batch), and nothing outside the box changes.
    func testNearestPasteAndUntouchedOutside() {
        let history = Support.randomTensor([3, 8, 10, 2], seed: 1)     // one more image than the batch
        let x = Support.randomTensor([2, 8, 10, 2], seed: 2)
        let before = x.clone()
        let box = Box(x1: 1, y1: 2, x2: 6, y2: 5)                      // 3 rows × 5 columns
        pasteResized(history: history, into: x, box: box, mode: .nearest)
        let rows = legacyNearestSourceIndices(input: 8, output: 3), cols = legacyNearestSourceIndices(input: 10, output: 5)
        XCTAssertEqual(rows, [0, 2, 5])
        XCTAssertEqual(cols, [0, 2, 4, 6, 8])
        for n in 0..<2 { for y in 0..<8 { for xx in 0..<10 { for c in 0..<2 {
            let i = Support.at(x, n, y, xx, c)
            if y >= box.y1 && y < box.y2 && xx >= box.x1 && xx < box.x2 {
                let src = history[Support.at(history, n, rows[y - box.y1], cols[xx - box.x1], c)]
                XCTAssertEqual(x[i], src, "inside (\(n),\(y),\(xx),\(c))")
            } else {
                XCTAssertEqual(x[i], before[i], "outside (\(n),\(y),\(xx),\(c)) changed")
            }
        } } } }
    }

    /// The legacy transposed paste (the pre-fix release, §1.8; `--rm-legacy-transposed-roi` pastes into
    /// `box.transposed`): rows [x1, x2) and columns [y1, y2), of size (x2−x1, y2−y1).
    func testTransposedPaste() {
        let history = Support.randomTensor([2, 12, 12, 3], seed: 3)
        let x = Support.randomTensor([2, 12, 12, 3], seed: 4)
        let before = x.clone()
        let box = Box(x1: 2, y1: 5, x2: 9, y2: 8)                       // 7 wide, 3 high
        pasteResized(history: history, into: x, box: box.transposed, mode: .nearest)
        let rows = legacyNearestSourceIndices(input: 12, output: 7), cols = legacyNearestSourceIndices(input: 12, output: 3)
        for n in 0..<2 { for y in 0..<12 { for xx in 0..<12 { for c in 0..<3 {
            let i = Support.at(x, n, y, xx, c)
            if y >= 2 && y < 9 && xx >= 5 && xx < 8 {
                XCTAssertEqual(x[i], history[Support.at(history, n, rows[y - 2], cols[xx - 5], c)])
            } else {
                XCTAssertEqual(x[i], before[i], "outside (\(n),\(y),\(xx),\(c)) changed")
            }
        } } } }
        // And it is a different region from the untransposed paste.
        let y2 = before.clone()
        pasteResized(history: history, into: y2, box: box, mode: .nearest)
        XCTAssertNotEqual(y2.array, x.array)
    }

    /// Bilinear with align_corners reproduces a linear ramp exactly: f(y, x) = a·y + b·x resized to h×w is
    /// a·r·(H−1)/(h−1) + b·q·(W−1)/(w−1).
    func testBilinearPasteOfRamp() {
        let H = 9, W = 13
        let history = Tensor(shape: [1, H, W, 2])
        for y in 0..<H { for x in 0..<W {
            history[Support.at(history, 0, y, x, 0)] = Float(3 * y + x)
            history[Support.at(history, 0, y, x, 1)] = Float(-y) + 0.5 * Float(x)
        } }
        let x = Tensor(shape: [1, H, W, 2])
        x.fill(-99)
        let box = Box(x1: 3, y1: 1, x2: 10, y2: 6)                      // 5 rows, 7 columns
        pasteResized(history: history, into: x, box: box, mode: .bilinear)
        for r in 0..<5 { for q in 0..<7 {
            let sy = Double(r) * Double(H - 1) / 4, sx = Double(q) * Double(W - 1) / 6
            XCTAssertEqual(Double(x[Support.at(x, 0, 1 + r, 3 + q, 0)]), 3 * sy + sx, accuracy: 1e-4)
            XCTAssertEqual(Double(x[Support.at(x, 0, 1 + r, 3 + q, 1)]), -sy + 0.5 * sx, accuracy: 1e-4)
        } }
        var outside = 0
        for i in 0..<x.count where x[i] == -99 { outside += 1 }
        XCTAssertEqual(outside, (H * W - 35) * 2)
    }

    func testEmptyBoxWritesNothing() {
        let history = Support.randomTensor([1, 4, 4, 1], seed: 5)
        let x = Support.randomTensor([1, 4, 4, 1], seed: 6)
        let before = x.array
        pasteResized(history: history, into: x, box: Box(x1: 2, y1: 2, x2: 2, y2: 2), mode: .nearest)
        pasteResized(history: history, into: x, box: Box(x1: 1, y1: 0, x2: 1, y2: 3), mode: .bilinear)
        XCTAssertEqual(x.array, before)
    }
}
