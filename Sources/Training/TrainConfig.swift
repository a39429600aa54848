import Models
import Optim

/// Everything that defines a training run. The command fills it from flags; tests build it directly.
public struct TrainConfig: Sendable {
    public var data = "fashion-mnist"
    public var model: ResNet.Variant = .resnet20
    public var epochs = 3
    public var batchSize = 128                 // per rank
    public var evalBatchSize = 256
    public var lr = 0.1
    public var scaleLR = false                 // lr × global_batch / 256
    public var weightDecay = 5e-4
    public var momentum = 0.9
    public var nesterov = false
    public var decayNormAndBias = true
    public var warmupEpochs = 0.0
    public var schedule: LRSchedule.Kind = .cosine
    public var milestones: [Int] = []
    public var lrDecay = 0.1
    public var seed: UInt64 = 27
    public var outDir = "runs/latest"
    /// Stop after this many optimizer steps in total (tests and benchmarks); nil = run all epochs.
    public var maxSteps: Int?
    /// Use only the first N training samples (quick runs); nil = all.
    public var trainLimit: Int?
    /// Use only the first N evaluation samples; nil = all.
    public var valLimit: Int?
    public var quiet = false

    public init() {}
}
