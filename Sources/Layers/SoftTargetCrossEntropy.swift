import Foundation
import Kernels

/// loss = −(1/B)·Σᵢ Σ_c yᵢ_c·log_softmax(zᵢ)_c : the criterion of the RecursiveMix code, timm's
/// SoftTargetCrossEntropy, and plain cross-entropy when y is one-hot (docs/RECURSIVEMIX_SPEC.md §2.3). The
/// log-sum-exp subtracts the row maximum and sums the exponentials in Double, so large logits neither
/// overflow nor lose the small terms.
public final class SoftTargetCrossEntropy {
    private var gradient: Tensor?
    private var probabilities: Tensor?
    public init() {}

    /// Returns the mean loss over the B rows of `z` [B, K] against `y` [B, K]; `backward(scale:)` afterwards
    /// gives dL/dz times `scale`.
    public func forward(logits z: Tensor, targets y: Tensor) -> Double {
        let b = z.shape[0], k = z.count / b
        precondition(y.count == z.count, "targets \(y.shape) do not match logits \(z.shape)")
        let p = ensure(&probabilities, z.shape)
        var total = 0.0
        for i in 0..<b {
            let zi = z.data + i * k, yi = y.data + i * k, pi = p.data + i * k
            var m = zi[0]
            for c in 1..<k { m = max(m, zi[c]) }
            var s = 0.0
            for c in 0..<k { s += exp(Double(zi[c] - m)) }
            let lse = Double(m) + log(s)
            for c in 0..<k {
                let logp = Double(zi[c]) - lse
                pi[c] = Float(exp(logp))
                if yi[c] != 0 { total -= Double(yi[c]) * logp }
            }
        }
        lastTargets = y
        return total / Double(b)
    }

    private var lastTargets: Tensor?

    /// dL/dz = (softmax(z)·Σ_c y_c − y) / B, times `scale` (the loss weight).
    public func backward(scale: Float = 1) -> Tensor {
        guard let p = probabilities, let y = lastTargets else { fatalError("loss backward before forward") }
        let b = p.shape[0], k = p.count / b
        let g = ensure(&gradient, p.shape)
        let f = scale / Float(b)
        for i in 0..<b {
            let pi = p.data + i * k, yi = y.data + i * k, gi = g.data + i * k
            var sy: Float = 0
            for c in 0..<k { sy += yi[c] }
            for c in 0..<k { gi[c] = (pi[c] * sy - yi[c]) * f }
        }
        return g
    }

    /// Softmax of the last forward's logits, [B, K].
    public var lastProbabilities: Tensor? { probabilities }
}
