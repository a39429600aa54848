import ArgumentParser
import Foundation
import Kernels
import Layers
import Models
import Optim
import Training

/// `rmtrain bench`: training throughput of the models on synthetic 32×32 batches, next to the sgemm
/// peak of the same machine measured in the same run, so the fraction of peak a step reaches is known.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure sgemm GFLOP/s and training images/s (release build; not a test).")

    @Option(help: "Models, comma-separated.")
    var models = "resnet20,cifar-resnet18"

    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Batch size.")
    var batchSize = 64

    @Option(name: .customLong("image-size"), parsing: .unconditional, help: "Input height and width.")
    var imageSize = 32

    @Option(parsing: .unconditional, help: "Thread counts to measure, comma-separated.")
    var threads = "1,2"

    @Option(parsing: .unconditional, help: "Timed seconds per measurement (after warm-up steps).")
    var seconds = 10.0

    @Flag(help: "Print one JSON object per measurement instead of a table.")
    var json = false

    func run() throws {
        let threadCounts = threads.split(separator: ",").compactMap { Int($0) }
        let variants = try models.split(separator: ",").map { name -> ResNet.Variant in
            guard let v = ResNet.Variant(rawValue: String(name)) else {
                throw ValidationError("--models: unknown model '\(name)'")
            }
            return v
        }
        for t in threadCounts {
            BLAS.setBLASThreads(t)
            let peak = sgemmPeak()
            BLAS.setThreads(t)
            emit(["kind": "sgemm", "threads": "\(t)", "gflops": fmt(peak)])
            for v in variants {
                let (ips, flops) = trainThroughput(v)
                let gflops = flops * ips / 1e9
                emit(["kind": "train", "model": v.rawValue, "threads": "\(t)", "batch": "\(batchSize)",
                      "images_per_sec": fmt(ips), "gflops": fmt(gflops), "fraction_of_sgemm_peak": fmt(gflops / peak)])
            }
        }
    }

    private func fmt(_ x: Double) -> String { String(format: "%.3f", x) }

    private func emit(_ fields: [String: String]) {
        if json {
            let body = fields.keys.sorted().map { k in
                let v = fields[k]!
                return Double(v) != nil ? "\"\(k)\": \(v)" : "\"\(k)\": \"\(v)\""
            }
            writeLine("{" + body.joined(separator: ", ") + "}")
        } else {
            writeLine(fields.keys.sorted().map { "\($0)=\(fields[$0]!)" }.joined(separator: "  "))
        }
    }

    /// Best of several large square sgemms (2048³): OpenBLAS's peak on this machine and thread count.
    private func sgemmPeak() -> Double {
        let n = 2048
        let a = Tensor(shape: [n, n]), b = Tensor(shape: [n, n]), c = Tensor(shape: [n, n])
        var rng = RandomStream(seed: 1)
        for i in 0..<(n * n) { a[i] = Float(rng.uniform()); b[i] = Float(rng.uniform()) }
        var best = 0.0
        for _ in 0..<5 {
            let t0 = Date()
            sgemm(m: n, n: n, k: n, a: a.data, lda: n, b: b.data, ldb: n, c: c.data, ldc: n)
            best = max(best, 2 * Double(n * n * n) / Date().timeIntervalSince(t0) / 1e9)
        }
        return best
    }

    /// Images/s of full training steps (forward, loss, backward, SGD) and FLOPs per image.
    private func trainThroughput(_ v: ResNet.Variant) -> (Double, Double) {
        let model = ResNet(v, inChannels: 3, numClasses: 10)
        model.initialize(seed: 1)
        let x = Tensor(shape: [batchSize, imageSize, imageSize, 3])
        var rng = RandomStream(seed: 2)
        for i in 0..<x.count { x[i] = Float(rng.normal()) }
        let y = Tensor(shape: [batchSize, 10])
        for i in 0..<batchSize { y[i * 10 + i % 10] = 1 }
        let loss = SoftTargetCrossEntropy()
        let sgd = SGD(parameters: model.parameters, weightDecay: 5e-4)
        func step() {
            model.zeroGradients()
            let logits = model.forward(x, training: true)
            _ = loss.forward(logits: logits, targets: y)
            model.backward(logitsGradient: loss.backward())
            sgd.step(lr: 0.01)
        }
        for _ in 0..<2 { step() }
        var steps = 0
        let t0 = Date()
        while Date().timeIntervalSince(t0) < seconds || steps < 3 { step(); steps += 1 }
        let elapsed = Date().timeIntervalSince(t0)
        return (Double(steps * batchSize) / elapsed, model.lastTrainingStepFlops / Double(batchSize))
    }
}


