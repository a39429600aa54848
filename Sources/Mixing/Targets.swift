import Foundation
import Kernels

/// Which label-smoothing convention a one-hot target uses.
public enum SmoothingStyle: String, Sendable, CaseIterable {
    /// timm's `mixup_target` (§10.1): off = s/K, on = 1 − s + s/K.
    case timm
    /// RecursiveMix's `smooth_one_hot` (`utils.py:62-73`, §2.4): on = 1 − s, off = s/(K−1).
    case rm

    /// (on, off) values for `classes` classes and smoothing `s`. Both conventions sum to 1 per row.
    public func values(classes k: Int, smoothing s: Double) -> (on: Float, off: Float) {
        precondition(s >= 0 && s < 1, "smoothing must be in [0, 1)")
        switch self {
        case .timm:
            let off = s / Double(k)
            return (Float(1 - s + off), Float(off))
        case .rm:
            precondition(k >= 2, "RM smoothing divides by K − 1")
            return (Float(1 - s), Float(s / Double(k - 1)))
        }
    }
}

/// Soft targets as [B, K] tensors. All functions write into caller-owned tensors (reshaped, grown only
/// when a batch is larger than any before), so a training step does not allocate.
public enum Targets {
    /// Smoothed one-hot of `labels` into `out` ([B, K]).
    public static func oneHot(labels: [Int], classes k: Int, smoothing s: Double = 0, style: SmoothingStyle = .rm,
                              into out: Tensor) {
        let (on, off) = style.values(classes: k, smoothing: s)
        out.reshape([labels.count, k])
        out.fill(off)
        for (i, t) in labels.enumerated() {
            precondition(t >= 0 && t < k, "label \(t) outside 0..<\(k)")
            out[i * k + t] = on
        }
    }

    /// timm's `mixup_target` (§10.1): y = lam·onehot(t) + (1−lam)·onehot(t.flip(0)), with the smoothing
    /// applied to each one-hot BEFORE mixing. The partner of row i is row B−1−i (the reversed batch).
    /// Used for both Mixup and CutMix (with CutMix's corrected λ).
    public static func mixWithReversed(labels: [Int], classes k: Int, smoothing s: Double, style: SmoothingStyle = .timm,
                                       lam: Double, into out: Tensor) {
        let (on, off) = style.values(classes: k, smoothing: s)
        let b = labels.count
        out.reshape([b, k])
        // y1·lam + y2·(1 − lam) element by element, as the tensor expression computes it (float32).
        let l = Float(lam), m = Float(1 - lam)
        let offMix = off * l + off * m
        out.fill(offMix)
        for i in 0..<b {
            let t1 = labels[i], t2 = labels[b - 1 - i]
            precondition(t1 >= 0 && t1 < k && t2 >= 0 && t2 < k, "label outside 0..<\(k)")
            if t1 == t2 {
                out[i * k + t1] = on * l + on * m
            } else {
                out[i * k + t1] = on * l + off * m
                out[i * k + t2] = off * l + on * m
            }
        }
    }

    /// y = lam·y + (1−lam)·partner[:B], in place: the RecursiveMix label update (`utils.py:387`) with
    /// `partner` = the stored, already-mixed history labels (which may hold more rows than y: the first B
    /// rows are used). Because the stored label is itself mixed, repeated updates give the batch of t steps
    /// ago the weight lam_{k−t}·Π(1 − lam_s) over the later steps: a geometric decay (§1.6).
    public static func mix(_ y: Tensor, with partner: Tensor, lam: Double) {
        let b = y.shape[0], k = y.count / b
        precondition(partner.shape.count == 2 && partner.shape[1] == k && partner.shape[0] >= b,
                     "partner \(partner.shape) cannot give the first \(b) rows of \(k) classes")
        let l = Float(lam), m = Float(1 - lam)
        let yp = y.data, pp = partner.data
        for i in 0..<(b * k) { yp[i] = l * yp[i] + m * pp[i] }
    }

    /// Row-wise softmax of the first `rows` rows of `logits` into `out` ([rows, K]): the detached teacher
    /// distribution p^h = softmax(old_out)[:bs] of the consistency loss (temperature 1, §2.3). Max-shifted,
    /// accumulated in Double.
    public static func softmax(logits: Tensor, rows: Int, into out: Tensor) {
        let k = logits.shape[1]
        precondition(logits.shape.count == 2 && logits.shape[0] >= rows, "logits \(logits.shape) have fewer than \(rows) rows")
        out.reshape([rows, k])
        for i in 0..<rows {
            let z = logits.data + i * k, o = out.data + i * k
            var mx = z[0]
            for c in 1..<k { mx = max(mx, z[c]) }
            var s = 0.0
            for c in 0..<k { s += exp(Double(z[c] - mx)) }
            let inv = 1 / s
            for c in 0..<k { o[c] = Float(exp(Double(z[c] - mx)) * inv) }
        }
    }
}
