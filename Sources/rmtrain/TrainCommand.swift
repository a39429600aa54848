import ArgumentParser
import DataPipeline
import Distributed
import Foundation
import Kernels
import Training

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model and evaluate it after every epoch.",
        discussion: "Writes RUN_DIR/metrics.jsonl (one JSON object per epoch) and RUN_DIR/final.safetensors.")

    // The flags, each declared once in Training/Settings/TrainSettings.swift; the group says where a flag is
    // recorded, the title its section of the help (groups of one title share a section, in this order).
    static let modelAndData = "Model and data"
    @OptionGroup(title: modelAndData) var runSettings: RunSettings
    @OptionGroup(title: modelAndData) var dataSettings: DataSettings
    @OptionGroup(title: modelAndData) var loader: LoaderSettings
    @OptionGroup(title: "Optimizer and schedule") var optimizer: OptimizerSettings
    @OptionGroup(title: "Mixing (RecursiveMix follows the authors' code by default; flags give the paper's or the original release's variant)")
    var mixing: MixingSettings
    @OptionGroup(title: "Weight average") var weightAverage: WeightAverageSettings
    @OptionGroup(title: "Distributed") var allReduce: AllReduceSettings
    @OptionGroup(title: "Length and checks (recorded; a resumed run may change them)") var resumable: ResumableSettings
    @OptionGroup(title: "Output and checkpoints of this launch (recorded in config.yaml; may differ across ranks and resumes)")
    var launch: LaunchSettings
    @OptionGroup(title: "This invocation only (not recorded in RUN_DIR/config.yaml)") var invocation: InvocationSettings

    /// Read by `ConfigFile.expand` before parsing; declared here for the help and so that the name is taken.
    @Option(help: "A YAML file of train flags (e.g. launch/configs/*.yaml, or a run's config.yaml); flags given here override it.")
    var config: String?

    func run() throws {
        let world = try World.start(collectiveTimeout: launch.collectiveTimeout, threads: invocation.threads)
        defer { world.finish() }
        try world.reportingErrors {
            try train(world)
        }
    }

    /// The run's settings from the flags (what config.yaml records and `--config` reads back).
    func makeConfig() -> TrainConfig {
        TrainConfig(run: runSettings, optimizer: optimizer, weightAverage: weightAverage, allReduce: allReduce,
                    resumable: resumable, mixing: mixing, dataSettings: dataSettings, loader: loader, launch: launch,
                    invocation: invocation)
    }

    private func train(_ world: World) throws {
        let comm = world.comm
        let c = makeConfig()
        try Trainer.checkPrecision(c.precision)      // before the run folder: nothing to clean up
        // Rank 0's train.log receives every line printed from here on, those before it opens included; a
        // closed stdout pipe must not end the run either (Console ignores the write error).
        signal(SIGPIPE, SIG_IGN)
        if comm.rank == 0 { Console.startRecording() }
        // Held until the process ends: no other run writes into this folder meanwhile.
        let folder = comm.rank == 0 ? try RunFolder.claim(for: c) : nil
        defer { withExtendedLifetime(folder) {} }
        if comm.rank == 0 {
            writeLine("rmtrain: " + Hardware.summary)
            if c.precision != .fp32 { writeLine("rmtrain: " + c.precision.kernelsDescription) }
        }
        let trainer: Trainer
        do { trainer = try Trainer(config: c, comm: comm) }
        catch is DataInterrupted {
            // A preemption signal while an image folder was listed: every rank received it (mpirun forwards
            // it), none has trained; the job can be requeued as for any preemption.
            writeLine("rmtrain: \(PreemptedError(checkpoint: nil, step: 0).description) (while listing the data)")
            world.finish()
            Foundation.exit(Preemption.exitCode)
        }
        if comm.rank == 0 {
            let parameters: Int = trainer.model.parameterCount
            let ranks = "\(comm.size) rank\(comm.size == 1 ? "" : "s")"
            let d = trainer.data, shape = d.train.sampleShape
            let what = "\(c.model) (\(parameters) parameters), \(d.train.numClasses) classes at \(shape.height)×\(shape.width): "
                + "train \(d.train.name) (\(d.train.count) images), val \(d.val.name) (\(d.val.count) images)"
            writeLine("rmtrain: \(what), "
                      + "\(ranks) × batch \(c.batchSize) = global batch \(trainer.globalBatch), "
                      + "\(trainer.trainLoader.batchesPerEpoch) steps/epoch, \(world.threads) threads per rank, out \(c.out)")
        }
        Preemption.install()
        do { try trainer.run() }
        catch let e as PreemptedError {
            if comm.rank == 0 { writeLine("rmtrain: \(e.description)") }
            world.finish()
            Foundation.exit(Preemption.exitCode)
        }
    }
}
