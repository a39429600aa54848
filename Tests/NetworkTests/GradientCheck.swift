import Foundation
import XCTest
import Kernels
import Layers

/// Finite-difference gradient checking, shared by every layer test.
///
/// A test builds a scalar loss closure, usually L = Σ output·R with R a fixed random tensor (so that
/// dL/d(output) = R, which is what it feeds to `backward`), computes the analytic gradients from
/// backward (zeroing `Parameter.grad` first: layers accumulate into it), and calls `check` once per
/// tensor (input, weight, bias, residual, …).
///
/// Element check (`check`): for each checked element v the numerical derivative is the central difference
///     n = (L(v + eps) − L(v − eps)) / ((v + eps) − (v − eps)),
/// with L summed in Double and the denominator the step actually taken after Float rounding. eps is a
/// Float step, 1e-2 by default: the loss of every single layer here except BatchNorm2d and the cross
/// entropy is linear in each element, so the difference is exact up to float rounding.
/// Tolerance, one number per checked tensor:
///     error = max_i |a_i − n_i| / max(max_i |n_i|, floor)  ≤  tolerance   (default 1e-2)
/// i.e. the worst absolute error relative to the tensor's largest derivative (or to `scale` when given).
/// A wrong sign, a missing term or a wrong factor on any element that matters is an error of order 1.
/// The check also fails when every numerical derivative is below `floor` (a vacuous comparison).
///
/// Directional check (`checkDirectional`): moves all elements of some tensors at once along the analytic
/// gradient g, θ ± eps·g/‖g‖, and compares (L⁺ − L⁻) with the first-order prediction Σ g·(θ⁺ − θ⁻):
///     error = |(L⁺ − L⁻) / Σ g·(θ⁺ − θ⁻) − 1|  ≤  tolerance.
/// Along g the signal is as large as it can be, which is what a whole ReLU network with batch statistics
/// needs: its loss has a kink every ~1e-4 in most single-element directions (many ReLUs, BN over 8 rows
/// in the last stage), too rough for tight element-wise differences. It still catches any gradient that
/// is wrong in more than a small part of its norm: a wrong sign gives −2, a factor k gives 1/k − 1, an
/// error e ⟂ g gives ≈ ‖e‖²/‖g‖², a permuted layout a ratio near 0.
enum GradientCheck {
    struct Result {
        var maxAbsError: Double
        var maxNumerical: Double
        var error: Double        // maxAbsError / max(scale ?? maxNumerical, floor)
        var checked: Int
        var worst: (index: Int, analytic: Double, numerical: Double)
    }

    /// Loss Σ y·r in Double.
    static func dot(_ y: Tensor, _ r: Tensor) -> Double {
        precondition(y.count == r.count, "dot: \(y.shape) vs \(r.shape)")
        var s = 0.0
        for i in 0..<y.count { s += Double(y[i]) * Double(r[i]) }
        return s
    }

    /// A tensor of N(shift, scale²) values from `RandomStream(seed:, stream:)`.
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

    /// The element comparison without assertions (the self-tests use it to show that wrong gradients fail).
    static func measure(tensor: Tensor, analytic: [Float], indices: [Int]? = nil, eps: Float = 1e-2,
                        scale: Double? = nil, floor: Double = 1e-4, loss: () -> Double) -> Result {
        precondition(analytic.count == tensor.count, "analytic gradient has \(analytic.count) values for \(tensor.shape)")
        let idx = indices ?? Array(0..<tensor.count)
        var maxAbs = 0.0, maxNum = 0.0
        var worst = (index: -1, analytic: 0.0, numerical: 0.0)
        for i in idx {
            let v = tensor[i]
            tensor[i] = v + eps
            let lp = loss()
            tensor[i] = v - eps
            let lm = loss()
            tensor[i] = v
            let n = (lp - lm) / (Double(v + eps) - Double(v - eps))
            let a = Double(analytic[i])
            maxNum = max(maxNum, abs(n))
            if worst.index < 0 || abs(a - n) > maxAbs { maxAbs = abs(a - n); worst = (i, a, n) }
        }
        return Result(maxAbsError: maxAbs, maxNumerical: maxNum, error: maxAbs / max(scale ?? maxNum, floor),
                      checked: idx.count, worst: worst)
    }

    /// Compares `analytic` (dL/d`tensor`, read from backward before calling this) with central differences
    /// of `loss` at `indices` (all elements when nil); `tensor` is restored. See the type's comment.
    @discardableResult
    static func check(_ name: String, tensor: Tensor, analytic: [Float], indices: [Int]? = nil,
                      eps: Float = 1e-2, tolerance: Double = 1e-2, scale: Double? = nil, floor: Double = 1e-4,
                      loss: () -> Double, file: StaticString = #filePath, line: UInt = #line) -> Result {
        let r = measure(tensor: tensor, analytic: analytic, indices: indices, eps: eps, scale: scale, floor: floor, loss: loss)
        print("gradcheck \(name): \(r.checked) checked, max|a-n| = \(fmt(r.maxAbsError)), max|n| = \(fmt(r.maxNumerical)), "
              + (scale.map { "scale = \(fmt($0)), " } ?? "") + "error = \(fmt(r.error)) (tolerance \(fmt(tolerance)))")
        XCTAssertGreaterThan(scale ?? r.maxNumerical, floor,
                             "\(name): every derivative is below \(floor); the check is vacuous", file: file, line: line)
        XCTAssertLessThanOrEqual(r.error, tolerance,
                                 "\(name): worst element \(r.worst.index): analytic \(r.worst.analytic) vs numerical \(r.worst.numerical)",
                                 file: file, line: line)
        return r
    }

    /// The directional comparison without assertions: returns |(L⁺ − L⁻)/Σ g·(θ⁺ − θ⁻) − 1| and ‖g‖.
    static func measureDirectional(tensors: [Tensor], analytic: [[Float]], eps: Double,
                                   loss: () -> Double) -> (error: Double, norm: Double) {
        precondition(tensors.count == analytic.count)
        var norm2 = 0.0
        for g in analytic { for v in g { norm2 += Double(v) * Double(v) } }
        let norm = norm2.squareRoot()
        guard norm > 0 else { return (.infinity, 0) }
        let saved = tensors.map(\.array)
        func step(_ sign: Double) -> Double {     // moves to θ0 + sign·eps·g/‖g‖; returns Σ g·(θ − θ0)
            var moved = 0.0
            for (k, t) in tensors.enumerated() {
                let g = analytic[k], v0 = saved[k]
                for i in 0..<t.count {
                    t[i] = v0[i] + Float(sign * eps * Double(g[i]) / norm)
                    moved += Double(g[i]) * (Double(t[i]) - Double(v0[i]))
                }
            }
            return moved
        }
        let mp = step(1)
        let lp = loss()
        let mm = step(-1)
        let lm = loss()
        for (k, t) in tensors.enumerated() { t.copy(from: Tensor(shape: t.shape, values: saved[k])) }
        return (abs((lp - lm) / (mp - mm) - 1), norm)
    }

    @discardableResult
    static func checkDirectional(_ name: String, tensors: [Tensor], analytic: [[Float]], eps: Double,
                                 tolerance: Double, floor: Double = 1e-6, loss: () -> Double,
                                 file: StaticString = #filePath, line: UInt = #line) -> Double {
        let (error, norm) = measureDirectional(tensors: tensors, analytic: analytic, eps: eps, loss: loss)
        print("gradcheck \(name) along its gradient: |g| = \(fmt(norm)), error = \(fmt(error)) (tolerance \(fmt(tolerance)))")
        XCTAssertGreaterThan(norm, floor, "\(name): gradient norm below \(floor); the check is vacuous", file: file, line: line)
        XCTAssertLessThanOrEqual(error, tolerance, "\(name): directional derivative along the gradient", file: file, line: line)
        return error
    }

    static func fmt(_ x: Double) -> String { String(format: "%.3g", x) }
}

extension GradientCheck {
    /// Checks any `Layer` through its contract alone: L = Σ forward(x)·R, so dL/dy = R goes to `backward`;
    /// the input gradient and every parameter's gradient are compared with finite differences (element by
    /// element, or along the gradient with `directional` for layers with many ReLU kinks), and
    /// `backwardParameters` must give bit-identical parameter gradients to `backward`.
    static func checkLayer(_ name: String, _ layer: Layer, input x: Tensor, training: Bool = true, seed: UInt64,
                           tolerance: Double = 1e-2, eps: Float = 1e-2, directional: Bool = false,
                           file: StaticString = #filePath, line: UInt = #line) {
        let y = layer.forward(x, training: training)
        let r = randomTensor(y.shape, seed: seed, stream: 0xD7)
        for p in layer.parameters { p.grad.zero() }
        let dx = layer.backward(r).array
        let grads = layer.parameters.map(\.grad.array)
        let loss = { dot(layer.forward(x, training: training), r) }
        if directional {
            checkDirectional("\(name) (input and parameters)", tensors: [x] + layer.parameters.map(\.value),
                             analytic: [dx] + grads, eps: Double(eps), tolerance: tolerance, loss: loss, file: file, line: line)
        } else {
            check("\(name) input", tensor: x, analytic: dx, indices: sample(x.count, count: 400, seed: seed),
                  eps: eps, tolerance: tolerance, loss: loss, file: file, line: line)
            for (p, g) in zip(layer.parameters, grads) {
                check("\(name) \(p.name)", tensor: p.value, analytic: g, indices: sample(p.value.count, count: 200, seed: seed),
                      eps: eps, tolerance: tolerance, loss: loss, file: file, line: line)
            }
        }
        _ = layer.forward(x, training: training)
        for p in layer.parameters { p.grad.zero() }
        layer.backwardParameters(r)
        for (p, g) in zip(layer.parameters, grads) {
            XCTAssertEqual(p.grad.array, g, "\(name): backwardParameters differs from backward for \(p.name)", file: file, line: line)
        }
    }
}
