import DataPipeline
import Distributed
import Foundation
import Kernels
import Layers
import Models
import Optim

/// Training throughput on synthetic data through the real step (mixing, forward, backward, gradient
/// all-reduce, SGD): what `rmtrain bench` reports. Every rank runs the same number of steps.
public enum TrainingBenchmark {
    public struct Result {
        /// All ranks together, at the median step time: robust to the bursts of a noisy neighbour on a
        /// shared host (`launch/bench/torch_train.py` reports PyTorch the same way).
        public var imagesPerSecond: Double
        /// All ranks together, over the whole measured time.
        public var imagesPerSecondMean: Double
        public var flopsPerImage: Double
        public var secondsPerStep: Double
        public var allReduceWaitFraction: Double  // share of the step spent waiting for gradients
        /// Share of the step in the mixing method's own work (`StepStats.mixingSeconds`): RecursiveMix's
        /// cost over a plain step, measured inside one run instead of as a ratio of two noisy ones.
        public var mixingFraction: Double
        /// Each distinct convolution shape ("16→32 3×3 s2 at 32×32"), the kernels that ran it, its achieved
        /// GFLOP/s (direct-convolution FLOPs over the layers' time, forward and backward, in the measured
        /// steps: Winograd's figure counts the multiplications it avoided) and its share of the step.
        public var convolutionKernels: [ConvolutionShape]
    }

    public struct ConvolutionShape {
        public var shape: String, kernels: String
        public var gflops: Double, stepFraction: Double
    }

    public static func run(model name: String, batchSize: Int, imageSize: Int, mix: MixMethod,
                           steps: Int, precision: Precision = .fp32, overlap: Bool = true,
                           allReduceDtype: AllReduceDtype = .fp32, comm: Communicator = SingleProcess()) throws -> Result {
        var flags = MixingSettings.defaults
        flags.mix = mix
        let seed = RunSettings.defaults.seed
        let data = SyntheticImages(size: imageSize, channels: 3, classes: 10, count: batchSize * comm.size * (steps + 2))
        guard let model = Networks.make(name, inChannels: 3, numClasses: 10) else {
            throw TrainingError("unknown model \(name) (one of \(Networks.names.joined(separator: ", ")))")
        }
        model.initialize(seed: seed)
        model.use(precision)
        let method = makeMixingMethod(flags, batchSize: batchSize, seed: seed, classes: 10, sample: data.sampleShape,
                                      model: model, rank: comm.rank)
        var options = StepEngine.Options(batchSize: batchSize)
        options.overlapCommunication = overlap
        options.allReduceDtype = allReduceDtype
        let engine = StepEngine(model: model, mixing: method, comm: comm, options: options)
        try Consensus.broadcastModel(model, extra: engine.extraParameters, comm: comm)
        let sgd = SGD(parameters: engine.trainableParameters, weightDecay: 5e-4)
        let loader = BatchLoader(dataset: data,
                                 sampler: DistributedSampler(count: data.count, worldSize: comm.size, rank: comm.rank,
                                                             shuffle: false, seed: 1),
                                 batchSize: batchSize, augment: false, seed: 1)
        engine.startEpoch()
        var step = 0, wait = 0.0, mixing = 0.0
        var t0 = Date()
        var stepSeconds: [Double] = []
        try loader.forEachBatch(epoch: 0) { _, batch in
            if step == 2 {                      // two warm-up steps
                try comm.barrier("benchmark start")
                t0 = Date(); wait = 0; mixing = 0
                model.convolutions.forEach { $0.resetTiming() }
            }
            guard step < steps + 2 else { return }
            let started = Date()
            let stats = try engine.step(batch, step: step).stats
            sgd.step(lr: 0.01)
            if step >= 2 { stepSeconds.append(Date().timeIntervalSince(started)) }
            wait += stats.waitSeconds
            mixing += stats.mixingSeconds
            step += 1
        }
        let elapsed = Date().timeIntervalSince(t0)
        let median = stepSeconds.isEmpty ? elapsed : stepSeconds.sorted()[stepSeconds.count / 2]
        let v = try comm.allReduceSum(Times(elapsed: elapsed, wait: wait, mixing: mixing, medianStep: median), "benchmark times")
        let perRank = v.elapsed / Double(comm.size), medianStep = v.medianStep / Double(comm.size)
        return Result(imagesPerSecond: Double(batchSize * comm.size) / medianStep,
                      imagesPerSecondMean: Double(steps * batchSize * comm.size) / perRank,
                      flopsPerImage: model.lastTrainingStepFlops / Double(batchSize),
                      secondsPerStep: medianStep, allReduceWaitFraction: v.wait / v.elapsed, mixingFraction: v.mixing / v.elapsed,
                      convolutionKernels: shapes(model.convolutions, elapsed: elapsed))
    }

    /// The layers grouped by shape, in first-use order, with their summed time and FLOPs.
    static func shapes(_ convolutions: [Conv2d], elapsed: Double) -> [ConvolutionShape] {
        var order: [String] = [], found: [String: (kernels: String, seconds: Double, flops: Double)] = [:]
        for c in convolutions {
            let shape = "\(c.inChannels)→\(c.outChannels) \(c.kernel)×\(c.kernel) s\(c.stride) at \(c.lastInputSize)"
            if found[shape] == nil { order.append(shape) }
            let had = found[shape] ?? (c.backendDescription, 0, 0)
            found[shape] = (had.kernels, had.seconds + c.timing.seconds, had.flops + c.timing.flops)
        }
        return order.map { s in
            let f = found[s]!
            return ConvolutionShape(shape: s, kernels: f.kernels, gflops: f.flops / max(f.seconds, 1e-12) / 1e9,
                                    stepFraction: f.seconds / max(elapsed, 1e-12))
        }
    }
}

/// Random images, the same for every index (loading costs one copy): data that never bottlenecks.
final class SyntheticImages: Dataset, @unchecked Sendable {
    let count: Int
    let sampleShape: (height: Int, width: Int, channels: Int)
    let numClasses: Int
    private let pixels: [Float]
    init(size: Int, channels: Int, classes: Int, count: Int) {
        self.count = count
        sampleShape = (size, size, channels)
        numClasses = classes
        var rng = RandomStream(seed: 2)
        pixels = (0..<(size * size * channels)).map { _ in Float(rng.normal()) }
    }
    var name: String { "synthetic" }
    var normalization: Normalization { Normalization(mean: [0, 0, 0], std: [1, 1, 1]) }
    var classNames: [String] { (0..<numClasses).map { "class\($0)" } }
    func label(_ index: Int) -> Int { index % numClasses }
    func load(_ index: Int, augment: Bool, rng: inout RandomStream, into out: UnsafeMutablePointer<Float>) throws {
        pixels.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: pixels.count) }
    }
}

extension TrainingBenchmark {
    /// One rank's timings, summed across ranks (and divided by the rank count where a mean is wanted).
    struct Times: NamedSums {
        var elapsed = 0.0, wait = 0.0, mixing = 0.0, medianStep = 0.0
        static var fields: [NamedSumsField<Self>] {
            [("elapsed", \.elapsed), ("wait", \.wait), ("mixing", \.mixing), ("median_step", \.medianStep)]
        }
    }
}
