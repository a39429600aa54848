import Kernels
import Layers
import XCTest

/// `--precision bf16-mixed` convolutions against float32 (the portable path) on every shape class the
/// models use, and repeatable bit for bit. The bound, 1e-2 relative (L2 over the tensor), is bf16's
/// rounding: each input, weight and gradient value loses up to 2⁻⁹ ≈ 0.2 % of itself, and the float32
/// accumulation of k·k·Cin such products keeps the tensor's error at that order (measured 2–4e-3).
/// The error must also exceed 1e-4: a float32 kernel run by mistake would pass the bound but not that.
final class BF16ConvolutionTests: XCTestCase {
    private let chosen = Precision.bf16Kernels
    // The bf16 kernels are what these tests are for: on wherever the CPU has them, whatever `auto` picks here.
    override func setUp() { Precision.bf16Kernels = BF16Kernels(runs: true, reason: "test") }
    override func tearDown() { ConvBackend.current = .onednn; Precision.bf16Kernels = chosen }

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

    /// Where bf16 does not pay, bf16-mixed's convolutions are float32's own kernels, bit for bit (Winograd
    /// included), so that a run is as exact as fp32 and as fast.
    func testWhereBF16DoesNotPayTheFloat32KernelsRunBitForBit() throws {
        try XCTSkipUnless(Precision.bf16Mixed.unsupportedReason == nil)
        Precision.bf16Kernels = BF16Kernels(runs: false, reason: "test")
        let t = ConvRuns.self
        for (cin, cout, k, s, p, size) in [(32, 32, 3, 1, 1, 8), (16, 32, 3, 2, 1, 9), (16, 32, 1, 2, 0, 8)] {
            let calls: [(Int, UInt64)] = [(3, 1), (2, 2)]
            XCTAssertEqual(t.run(.onednn, cin: cin, cout: cout, k: k, s: s, p: p, size: size, calls: calls, precision: .bf16Mixed),
                           t.run(.onednn, cin: cin, cout: cout, k: k, s: s, p: p, size: size, calls: calls),
                           "conv\(k)x\(k) s\(s) \(cin)->\(cout)")
        }
        let conv = Conv2d("conv", 32, 32, kernel: 3, padding: 1)
        conv.precision = .bf16Mixed
        _ = conv.forward(GradientCheck.randomTensor([2, 8, 8, 32], seed: 1, stream: 1), training: true)
        XCTAssertTrue(conv.backendDescription.contains("fp32") && conv.backendDescription.contains("wino"),
                      conv.backendDescription)
    }

    /// `RMTRAIN_BF16_KERNELS` and the measured rates decide (Precision.bf16Kernels): bf16 at ≥ 1.5× the float32
    /// rate or with AMX, float32 below, the override either way.
    func testTheKernelRuleFollowsTheMeasuredRates() {
        let zen4 = (fp32: 100.0, bf16: 200.0), goldenCove = (fp32: 178.9, bf16: 89.5), close = (fp32: 100.0, bf16: 140.0)
        XCTAssertTrue(BF16Kernels.choose(setting: nil, rates: zen4, amx: false).runs)
        XCTAssertFalse(BF16Kernels.choose(setting: nil, rates: goldenCove, amx: false).runs)
        XCTAssertFalse(BF16Kernels.choose(setting: "auto", rates: close, amx: false).runs)
        XCTAssertTrue(BF16Kernels.choose(setting: nil, rates: goldenCove, amx: true).runs)
        XCTAssertFalse(BF16Kernels.choose(setting: nil, rates: nil, amx: false).runs)
        XCTAssertTrue(BF16Kernels.choose(setting: "on", rates: goldenCove, amx: false).runs)
        XCTAssertFalse(BF16Kernels.choose(setting: "off", rates: zen4, amx: false).runs)
        XCTAssertTrue(BF16Kernels.choose(setting: nil, rates: goldenCove, amx: false).reason.contains("0.50×"))
    }

    /// The probe measures real multiply-adds: both rates positive, and where AVX-512 FMA runs on two pipes
    /// (every CPU with AVX512-BF16), float32's is at most 64 FLOP a cycle at ≤ 6 GHz. A loop the compiler
    /// turned into adds (as clang once did) read 1.55× the true peak.
    func testTheRateProbeMeasuresMultiplyAdds() throws {
        let r = try XCTUnwrap(Hardware.dotRates ?? (Hardware.hasBF16 ? nil : (1, 1)), "AVX512-BF16 but no rates")
        XCTAssertGreaterThan(r.fp32, 1)
        XCTAssertGreaterThan(r.bf16, 1)
        XCTAssertLessThan(r.fp32, 64 * 6.0)
        XCTAssertLessThan(r.bf16, 4 * 64 * 6.0)
    }
}
