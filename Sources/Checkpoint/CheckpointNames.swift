/// The names a checkpoint gives its sections and the tensors beside the model's own (which keep their
/// torchvision state-dict names): written by the trainer's checkpointing and its weight average
/// (`Trainer+Checkpointing.swift`, `WeightEMA.swift`), read back by a resume and by `rmtrain export`.
/// They are part of checkpoint format 1: renaming one makes every checkpoint written so far unreadable.
public enum CheckpointNames {
    /// The section every rank shares: parameters, rank-averaged BN buffers, momentum, the weight average.
    public static let sharedSection = "tensors"
    /// Rank r's own section is `rank<r>` (`rank0`, `rank1`, …).
    public static let rankSectionPrefix = "rank"
    /// Shared section: SGD's momentum buffer of parameter P is `momentum.P`.
    public static let momentum = "momentum."
    /// Shared section: the weight average's (`--model-ema`) parameter or rank-averaged buffer P is `ema.P`.
    public static let ema = "ema."
    /// Shared section: RecursiveMix's own consistency head (`--rm-share-head` off) is `fc_roi.weight` and
    /// `fc_roi.bias`; `export` leaves it out (it is not part of the backbone and classifier).
    public static let consistencyHead = "fc_roi"
    /// A rank's section: its own (not rank-averaged) BN buffer B is `rank_buffer.B`.
    public static let rankBuffer = "rank_buffer."
    /// A rank's section: the weight average's own BN buffer B is `rank_ema_buffer.B`.
    public static let rankEMABuffer = "rank_ema_buffer."

    /// The section name of rank `r`.
    public static func rankSection(_ r: Int) -> String { rankSectionPrefix + String(r) }
    /// The rank whose section `name` is, or nil for another section.
    public static func rank(ofSection name: String) -> Int? {
        name.hasPrefix(rankSectionPrefix) ? Int(name.dropFirst(rankSectionPrefix.count)) : nil
    }
}
