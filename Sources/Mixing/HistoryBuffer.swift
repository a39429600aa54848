import Kernels

/// The RecursiveMix history triplet of one rank (§1.7): the MIXED input x̃ of the last step [B, H, W, C],
/// its MIXED soft label ỹ [B, K], and the main-head logits on x̃ [B, K] (softmax is applied only when
/// used, by `Targets.softmax`). Stored after the forward pass and before the update, every step (mixed
/// or not), and cleared at the start of every epoch (`old_inputs = None`, `main.py:195`).
///
/// The tensors are allocated once (at the full batch size) and overwritten by each `store`: the copy is
/// needed because the trainer's own input, target and logit tensors are reused by the next step.
/// `count` is the number of valid samples (the last batch of an epoch may be smaller); readers slice
/// `[:bs]` by using the first bs rows.
public final class HistoryBuffer {
    public let images: Tensor
    public let labels: Tensor
    public let logits: Tensor
    public private(set) var count: Int = 0

    /// Preallocates for `batch` images of height×width×channels and `classes` classes.
    public init(batch: Int, height: Int, width: Int, channels: Int, classes: Int) {
        images = Tensor(shape: [batch, height, width, channels])
        labels = Tensor(shape: [batch, classes])
        logits = Tensor(shape: [batch, classes])
    }

    /// No history: the first step of an epoch, which trains on the clean batch (λ = 1).
    public var isEmpty: Bool { count == 0 }

    /// Copies this step's mixed images, mixed labels and main-head logits (all with the same batch size).
    /// `logits` may be the model's output tensor: it is copied, so later steps can overwrite it.
    public func store(images x: Tensor, labels y: Tensor, logits z: Tensor) {
        let b = x.shape[0]
        precondition(x.shape.count == 4 && y.shape.count == 2 && z.shape.count == 2, "history expects NHWC and [B, K]")
        precondition(y.shape[0] == b && z.shape[0] == b, "history: \(x.shape), \(y.shape), \(z.shape) disagree on B")
        precondition(y.shape[1] == z.shape[1], "history: labels \(y.shape) and logits \(z.shape) disagree on K")
        images.copy(from: x)
        labels.copy(from: y)
        logits.copy(from: z)
        count = b
    }

    /// Forgets the history (start of an epoch). Keeps the storage.
    public func clear() { count = 0 }
}
