import Kernels

/// The RecursiveMix settings of §1 and §8, with the reference code's defaults.
public struct RecursiveMixConfig: Equatable, Sendable {
    /// u ~ U[0, alpha] is the nominal historical-area fraction (`--aug_alpha`, default 0.5).
    public var alpha: Double
    /// History resize mode (`--interpolate_mode`, default nearest).
    public var mode: InterpolationMode
    /// Reproduce the release before `ed381bf` (§1.8): the patch goes into the transposed box while the
    /// RoI stays the sampled box, so the consistency head looks at the mirror image of the patch.
    public var legacyTransposedRoI: Bool

    public init(alpha: Double = 0.5, mode: InterpolationMode = .nearest, legacyTransposedRoI: Bool = false) {
        self.alpha = alpha
        self.mode = mode
        self.legacyTransposedRoI = legacyTransposedRoI
    }
}

/// What one RecursiveMix step did. `lam` is the weight of the CURRENT image (the paper's λ is 1 − lam);
/// `roiBox` is what RoIAlign must read (equal to `pasteBox` in the fixed version).
public struct RecursiveMixStep: Equatable, Sendable {
    public var pasteBox: Box
    public var roiBox: Box
    public var lam: Double
    /// λ < 1: the RoI branch and the consistency loss run this step (`main.py:213-220`).
    public var isMixed: Bool { lam < 1 }
}

/// `recursive_mix` of `utils.py:356-390` (§1.1) on one rank's batch: samples one box and λ, pastes the
/// nearest- (or bilinear-) resized WHOLE history image i into image i's box, in place, and mixes the
/// labels y = lam·y + (1 − lam)·ỹ_hist[:bs]. The caller then runs the model, the RoI branch when
/// `isMixed`, and stores (x, y, logits) into the history.
public final class RecursiveMixer {
    public let config: RecursiveMixConfig
    private let paster = HistoryPaster()

    public init(config: RecursiveMixConfig = RecursiveMixConfig()) { self.config = config }

    /// Returns nil, consuming no random numbers, when the history is empty (the first step of an epoch:
    /// a plain step on the clean batch, `main.py:207-211`). Otherwise draws u, cx, cy (in that order).
    /// `images` [B, H, W, C] and `targets` [B, K] are updated in place; B ≤ history.count.
    public func apply(images x: Tensor, targets y: Tensor, history: HistoryBuffer,
                      rng: inout RandomStream) -> RecursiveMixStep? {
        if history.isEmpty { return nil }
        let b = x.n
        precondition(b <= history.count, "batch of \(b) but only \(history.count) history samples")
        precondition(y.shape[0] == b, "targets \(y.shape) do not match the batch of \(b)")
        let h = x.h, w = x.w
        // The legacy code read W = size[2] (the height) and H = size[3]; identical for square images.
        let (box, lam) = config.legacyTransposedRoI
            ? BoxSampler.recursiveMix(width: h, height: w, alpha: config.alpha, rng: &rng)
            : BoxSampler.recursiveMix(width: w, height: h, alpha: config.alpha, rng: &rng)
        let pasteBox = config.legacyTransposedRoI ? box.transposed : box
        if !box.isEmpty {
            paster.paste(history: history.images, into: x, box: pasteBox, mode: config.mode)
        }
        Targets.mix(y, with: history.labels, lam: lam)
        return RecursiveMixStep(pasteBox: pasteBox, roiBox: box, lam: lam)
    }
}
