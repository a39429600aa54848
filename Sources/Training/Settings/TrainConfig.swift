import DataPipeline

/// Everything that defines a training run: one value of each flag group of `rmtrain train` (TrainSettings.swift),
/// read as one flat struct (`config.epochs`, `config.rmAlpha`). The command fills it from its flags; tests
/// build it with `TrainConfig()` (every default) and set fields.
@dynamicMemberLookup
public struct TrainConfig: Sendable {
    public var run = RunSettings.defaults
    public var optimizer = OptimizerSettings.defaults
    public var weightAverage = WeightAverageSettings.defaults
    public var allReduce = AllReduceSettings.defaults
    public var resumable = ResumableSettings.defaults
    public var mixing = MixingSettings.defaults
    public var dataSettings = DataSettings.defaults
    public var loader = LoaderSettings.defaults
    public var launch = LaunchSettings.defaults
    public var invocation = InvocationSettings.defaults

    public init() {}
    public init(run: RunSettings, optimizer: OptimizerSettings, weightAverage: WeightAverageSettings,
                allReduce: AllReduceSettings, resumable: ResumableSettings, mixing: MixingSettings,
                dataSettings: DataSettings, loader: LoaderSettings, launch: LaunchSettings, invocation: InvocationSettings) {
        (self.run, self.optimizer, self.weightAverage, self.allReduce) = (run, optimizer, weightAverage, allReduce)
        (self.resumable, self.mixing, self.dataSettings) = (resumable, mixing, dataSettings)
        (self.loader, self.launch, self.invocation) = (loader, launch, invocation)
    }

    public subscript<T>(dynamicMember path: WritableKeyPath<RunSettings, T>) -> T {
        get { run[keyPath: path] } set { run[keyPath: path] = newValue }
    }
    public subscript<T>(dynamicMember path: WritableKeyPath<OptimizerSettings, T>) -> T {
        get { optimizer[keyPath: path] } set { optimizer[keyPath: path] = newValue }
    }
    public subscript<T>(dynamicMember path: WritableKeyPath<WeightAverageSettings, T>) -> T {
        get { weightAverage[keyPath: path] } set { weightAverage[keyPath: path] = newValue }
    }
    public subscript<T>(dynamicMember path: WritableKeyPath<AllReduceSettings, T>) -> T {
        get { allReduce[keyPath: path] } set { allReduce[keyPath: path] = newValue }
    }
    public subscript<T>(dynamicMember path: WritableKeyPath<ResumableSettings, T>) -> T {
        get { resumable[keyPath: path] } set { resumable[keyPath: path] = newValue }
    }
    public subscript<T>(dynamicMember path: WritableKeyPath<MixingSettings, T>) -> T {
        get { mixing[keyPath: path] } set { mixing[keyPath: path] = newValue }
    }
    public subscript<T>(dynamicMember path: WritableKeyPath<DataSettings, T>) -> T {
        get { dataSettings[keyPath: path] } set { dataSettings[keyPath: path] = newValue }
    }
    public subscript<T>(dynamicMember path: WritableKeyPath<LoaderSettings, T>) -> T {
        get { loader[keyPath: path] } set { loader[keyPath: path] = newValue }
    }
    public subscript<T>(dynamicMember path: WritableKeyPath<LaunchSettings, T>) -> T {
        get { launch[keyPath: path] } set { launch[keyPath: path] = newValue }
    }
    public subscript<T>(dynamicMember path: WritableKeyPath<InvocationSettings, T>) -> T {
        get { invocation[keyPath: path] } set { invocation[keyPath: path] = newValue }
    }

    /// The groups with their scopes, in the order config.yaml lists them (`--config` reads keys in any order, and
    /// a resume compares the fingerprint as a set of lines: the order is for the reader).
    private var groups: [(scope: SettingScope, recorded: [(key: String, value: String)])] {
        [(RunSettings.scope, run.recorded), (OptimizerSettings.scope, optimizer.recorded),
         (WeightAverageSettings.scope, weightAverage.recorded), (AllReduceSettings.scope, allReduce.recorded),
         (MixingSettings.scope, mixing.recorded),
         (DataSettings.scope, dataSettings.recorded), (ResumableSettings.scope, resumable.recorded),
         (LaunchSettings.scope, launch.recorded), (LoaderSettings.scope, loader.recorded),
         (InvocationSettings.scope, invocation.recorded)]
    }

    /// Every recorded setting under its `rmtrain train` flag name, with the value in flag syntax (booleans are
    /// flags: `true` means present; optional flags not given are left out, so `eval-batch-size` appears only
    /// when given: its default follows `--batch-size`). This is what RUN_DIR/config.yaml holds and `--config`
    /// reads back; the invocation's flags are left out.
    public var settings: [(key: String, value: String)] {
        groups.filter { $0.scope != .invocation }.flatMap(\.recorded)
    }

    /// The settings that must be equal on every rank, as `name=value` lines (compared at start and on resume).
    public var fingerprint: [String] {
        groups.filter { $0.scope == .training || $0.scope == .resumable }.flatMap(\.recorded).map { "\($0.key)=\($0.value)" }
    }

    /// Fingerprint lines a resumed run may change without changing the training it continues.
    public static let resumableDifferences = Set(ResumableSettings.flagNames)

    /// RUN_DIR/config.yaml: the recorded `settings` (no invocation flags; optional flags only when given), readable by `rmtrain train --config`.
    public var resolvedYAML: String {
        var out = "# rmtrain train configuration, resolved (flags over --config over defaults)\n"
        for (k, v) in settings {
            let plain = v == "true" || v == "false" || Double(v) != nil
            out += "\(k): \(plain ? v : "\"" + v.replacingOccurrences(of: "\"", with: "\\\"") + "\"")\n"
        }
        return out
    }

    // Readings of the flags under the names the training code uses.
    /// `--eval-batch-size`, else `--batch-size`.
    public var evaluationBatchSize: Int { self.evalBatchSize ?? self.batchSize }
    /// Weight decay also on BatchNorm parameters and biases (the RecursiveMix code), unless `--no-bn-decay`.
    public var decayNormAndBias: Bool { !self.noBNDecay }
    /// `--log-interval`: steps between rows of RUN_DIR/iterations.jsonl, 100 by default under `--sched-on epochs`
    /// (the RecursiveMix code's --print_freq, main.py:49), else 0 (no file).
    public var iterationLogInterval: Int { self.logInterval ?? (self.schedOn == .epochs ? 100 : 0) }
    /// TensorBoard event files in the run folder (rank 0), unless `--no-tensorboard`.
    public var tensorboard: Bool { !self.noTensorboard }
    /// The DataPipeline module's options for the data and loader flags.
    public var dataOptions: DataOptions { dataSettings.options(loader: loader) }
}
