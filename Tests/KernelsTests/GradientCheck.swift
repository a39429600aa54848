import XCTest
import Kernels
import Layers

/// Finite-difference gradient checking, shared by every layer test.
///
/// A test builds a scalar loss closure, usually L = Σ output·R with R a fixed random tensor (so that
/// dL/d(output) = R, which is what it feeds to `backward`), computes the analytic gradients from
/// backward, and calls `GradientCheck.check` once per tensor (input, weight, bias, residual, …).
///
/// For each checked element v of the tensor the numerical derivative is the central difference
///     n = (L(v + eps) − L(v − eps)) / (2·eps),
/// with L summed in Double. eps is a Float step (default 1e-2, 3e-3 for the whole network); the loss
/// of every layer here except BatchNorm and the cross entropy is linear in each single element, so the
/// difference is exact up to float rounding.
///
/// Tolerance (one number per checked tensor):
///     error = max_i |a_i − n_i| / max(max_i |n_i|, floor)  ≤  tolerance   (default 1e-2)
/// i.e. the worst absolute error relative to the tensor's largest gradient. A wrong sign, a missing
/// term or a wrong scale on any element that matters shows up as an error of order 1. The check also
/// fails when every numerical derivative is below `floor` (a vacuous comparison proves nothing).
enum GradientCheck {
    struct Result {
        var maxAbsError: Double
        var maxNumerical: Double
        var error: Double        // maxAbsError / max(maxNumerical, floor)
        var checked: Int
    }

    /// Loss Σ y·r in Double.
    static func dot(_ y: Tensor, _ r: Tensor) -> Double {
        precondition(y.count == r.count, "dot: \(y.shape) vs \(r.shape)")
        var s = 0.0
        for i in 0..<y.count { s += Double(y[i]) * Double(r[i]) }
        return s
    }

    /// A tensor of N(0, scale²) values from `RandomStream(seed:, stream:)`.
    static func randomTensor(_ shape: [Int], seed: UInt64, stream: UInt64 = 0, scale: Double = 1,
                             shift: Double = 0) -> Tensor {
        var rng = RandomStream(seed: seed, stream: stream)
        let t = Tensor(shape: shape)
        for i in 0..<t.count { t[i] = Float(rng.normal() * scale + shift) }
        return t
    }

    /// `count` distinct indices in 0..<n (all of them when n ≤ count), in increasing order.
    static func sample(_ n: Int, count: Int, seed: UInt64) -> [Int] {
        if n <= count { return Array(0..<n) }
        var rng = RandomStream(seed: seed, stream: 0x5A)
        return Array(rng.permutation(n).prefix(count)).sorted()
    }

    /// Compares `analytic` (dL/d`tensor`, read from backward before calling this) with central differences
    /// of `loss` at `indices` (all elements when nil). `tensor` is restored element by element.
    @discardableResult
    static func check(_ name: String, tensor: Tensor, analytic: [Float], indices: [Int]? = nil,
                      eps: Float = 1e-2, tolerance: Double = 1e-2, floor: Double = 1e-4,
                      loss: () -> Double, file: StaticString = #filePath, line: UInt = #line) -> Result {
        precondition(analytic.count == tensor.count, "\(name): analytic gradient has \(analytic.count) values for \(tensor.shape)")
        let idx = indices ?? Array(0..<tensor.count)
        var maxAbs = 0.0, maxNum = 0.0, worst = -1
        var worstPair = (0.0, 0.0)
        for i in idx {
            let v = tensor[i]
            tensor[i] = v + eps
            let lp = loss()
            tensor[i] = v - eps
            let lm = loss()
            tensor[i] = v
            // The actual steps after rounding v ± eps to Float.
            let h = Double(v + eps) - Double(v - eps)
            let n = (lp - lm) / h
            let a = Double(analytic[i])
            maxNum = max(maxNum, abs(n))
            if abs(a - n) > maxAbs || worst < 0 { maxAbs = max(maxAbs, abs(a - n)); worst = i; worstPair = (a, n) }
        }
        let error = maxAbs / max(maxNum, floor)
        let r = Result(maxAbsError: maxAbs, maxNumerical: maxNum, error: error, checked: idx.count)
        print("gradcheck \(name): \(idx.count) checked, max|a-n| = \(fmt(maxAbs)), max|n| = \(fmt(maxNum)), "
              + "error = \(fmt(error)) (tolerance \(fmt(tolerance)))")
        XCTAssertGreaterThan(maxNum, floor, "\(name): every numerical derivative is below \(floor); the check is vacuous",
                             file: file, line: line)
        XCTAssertLessThanOrEqual(error, tolerance,
                                 "\(name): worst element \(worst): analytic \(worstPair.0) vs numerical \(worstPair.1)",
                                 file: file, line: line)
        return r
    }

    static func fmt(_ x: Double) -> String { String(format: "%.3g", x) }
}
