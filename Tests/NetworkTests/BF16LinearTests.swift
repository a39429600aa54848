import Kernels
import Layers
import XCTest

/// `--precision bf16-mixed` linear layers (`bf16gemm`): within bf16's rounding of float32 (1e-2 relative, L2)
/// and visibly rounded (> 1e-5) where bf16 runs; float32's own result, bit for bit, where it does not.
final class BF16LinearTests: XCTestCase {
    private let chosen = Precision.bf16Kernels
    override func tearDown() { Precision.bf16Kernels = chosen }

    private func run(_ precision: Precision, n: Int = 5, inFeatures: Int = 96, out: Int = 10) -> [[Float]] {
        let fc = Linear("fc", inFeatures, out)
        var rng = RandomStream(seed: 3, stream: 1)
        fc.resetParameters(rng: &rng)
        fc.precision = precision
        fc.weight.grad.zero()
        fc.bias.grad.zero()
        let x = GradientCheck.randomTensor([n, inFeatures], seed: 1, stream: 1)
        let y = fc.forward(x, training: true).array
        let dx = fc.backward(GradientCheck.randomTensor([n, out], seed: 1, stream: 4)).array
        return [y, dx, fc.weight.grad.array, fc.bias.grad.array]
    }

    func testBF16LinearAgreesWithFloat32WithinItsRounding() {
        Precision.bf16Kernels = BF16Kernels(runs: true, reason: "test")
        let low = run(.bf16Mixed), ref = run(.fp32)
        for (what, (a, b)) in zip(["y", "dx", "dw"], zip(low, ref)) {
            let e = ConvRuns.relative(a, b)
            XCTAssertLessThanOrEqual(e, 1e-2, what)
            XCTAssertGreaterThan(e, 1e-5, "\(what): no bf16 rounding")
        }
        XCTAssertEqual(low[3], ref[3], "the bias gradient is a float32 sum either way")
        XCTAssertEqual(low, run(.bf16Mixed), "not repeatable")
    }

    func testWhereBF16DoesNotPayLinearIsFloat32BitForBit() {
        Precision.bf16Kernels = BF16Kernels(runs: false, reason: "test")
        XCTAssertEqual(run(.bf16Mixed), run(.fp32))
    }

    /// bf16gemm's products are of bfloat16-rounded operands: 1 + 2⁻⁸ rounds to 1 (ties to even), so
    /// (1 + 2⁻⁸)·(1 + 2⁻⁸) gives 1, where float32 gives 1 + 2⁻⁷ + 2⁻¹⁶.
    func testOperandsAreRoundedToBFloat16() {
        var a: Float = 1 + 0x1p-8, b: Float = 1 + 0x1p-8, c: Float = 0
        bf16gemm(m: 1, n: 1, k: 1, a: &a, lda: 1, b: &b, ldb: 1, c: &c, ldc: 1)
        XCTAssertEqual(c, 1)
    }
}
