import Kernels
import Layers
import XCTest

/// `--precision bf16-mixed` convolutions against float32 (the portable path) on every shape class the
/// models use, and repeatable bit for bit. The bound, 1e-2 relative (L2 over the tensor), is bf16's
/// rounding: each input, weight and gradient value loses up to 2⁻⁹ ≈ 0.2 % of itself, and the float32
/// accumulation of k·k·Cin such products keeps the tensor's error at that order (measured 2–4e-3).
/// The error must also exceed 1e-4: a float32 kernel run by mistake would pass the bound but not that.
final class BF16ConvolutionTests: XCTestCase {
    override func tearDown() { ConvBackend.current = .onednn }

    func testBF16AgreesWithFloat32WithinItsRoundingOnEveryShapeClass() throws {
        try XCTSkipUnless(Precision.bf16Mixed.unsupportedReason == nil,
                          "bf16: \(Precision.bf16Mixed.unsupportedReason ?? "")")
        let t = ConvRuns.self
        let shapes = [(16, 16, 3, 1, 1, 32), (16, 32, 3, 2, 1, 32), (16, 32, 1, 2, 0, 32), (64, 64, 3, 1, 1, 8),
                      (3, 16, 3, 1, 1, 32), (3, 8, 7, 2, 3, 23), (6, 5, 3, 1, 1, 9), (6, 5, 1, 1, 0, 9),
                      (4, 6, 3, 2, 1, 9), (32, 64, 3, 2, 1, 4), (64, 64, 3, 1, 1, 1), (64, 256, 1, 1, 0, 7),
                      (128, 128, 3, 1, 1, 4)]
        let calls: [(Int, UInt64)] = [(4, 1), (1, 2), (3, 4)]
        for (cin, cout, k, s, p, size) in shapes {
            let tag = "bf16 conv\(k)x\(k) s\(s) \(cin)->\(cout) at \(size)x\(size)"
            let low = t.run(.onednn, cin: cin, cout: cout, k: k, s: s, p: p, size: size, calls: calls, precision: .bf16Mixed)
            let ref = t.run(.portable, cin: cin, cout: cout, k: k, s: s, p: p, size: size, calls: calls)
            for (i, (f, q)) in zip(low, ref).enumerated() {
                for (what, a, b) in [("forward", f.y, q.y), ("input gradient", f.dx, q.dx), ("weight gradient", f.dw, q.dw)] {
                    let e = t.relative(a, b)
                    XCTAssertLessThanOrEqual(e, 1e-2, "\(tag), call \(i): \(what)")
                    XCTAssertGreaterThan(e, 1e-4, "\(tag), call \(i): \(what) has no bf16 rounding: a float32 kernel ran")
                }
            }
            XCTAssertEqual(low, t.run(.onednn, cin: cin, cout: cout, k: k, s: s, p: p, size: size, calls: calls,
                                      precision: .bf16Mixed), "\(tag): not repeatable")
        }
    }

    func testBF16LayersNameTheirKernels() throws {
        try XCTSkipUnless(Precision.bf16Mixed.unsupportedReason == nil)
        let conv = Conv2d("conv", 32, 32, kernel: 3, padding: 1)
        conv.precision = .bf16Mixed
        _ = conv.forward(GradientCheck.randomTensor([2, 8, 8, 32], seed: 1, stream: 1), training: true)
        XCTAssertTrue(conv.backendDescription.contains("bf16-mixed"), conv.backendDescription)
        XCTAssertFalse(conv.backendDescription.contains("wino"), conv.backendDescription)
    }
}
