import ArgumentParser
import DataPipeline
import Distributed
import Foundation
import Kernels
import Models
import Training

/// `rmtrain bench`: training throughput on synthetic batches through the real training step, next to the
/// sgemm peak of the same machine measured in the same run, so the fraction of peak a step reaches is
/// known. Under mpirun it measures the distributed step (all-reduce included) and the share of the step
/// spent waiting for gradients.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure sgemm GFLOP/s and training images/s (release build; not a test).")

    @Option(help: "Models, comma-separated.")
    var models = "resnet20,cifar-resnet18"

    @Option(help: "Mixing methods to measure, comma-separated (none, rm, mixup, cutmix).")
    var mix = "none"

    @Option(help: "Batch size per rank.", check: .range(1...1_000_000))
    var batchSize = 64

    @Option(help: "Input height and width.", check: .range(DataOptions.imageSizes))
    var imageSize = 32

    @Option(parsing: .unconditional, help: "Thread counts per rank to measure, comma-separated (single process only).")
    var threads = "1,2"

    @Option(help: "Timed steps per measurement (after two warm-up steps).", check: .range(1...1_000_000))
    var steps = 20

    @Flag(help: "All-reduce after backward instead of overlapping it.")
    var noOverlap = false

    @Option(help: "Gradients on the wire, as train's --allreduce-dtype (fp32, bf16).")
    var allreduceDtype = AllReduceDtype.fp32

    @Flag(help: "Do not measure the sgemm peak.")
    var skipSGEMM = false

    @Flag(help: "Print one JSON object per measurement instead of key=value lines.")
    var json = false

    @Option(help: "Precisions to measure, comma-separated (fp32, bf16-mixed), as train's --precision.")
    var precision = "fp32"

    func run() throws {
        let world = try World.start(collectiveTimeout: 600, threads: nil)
        defer { world.finish() }
        let comm = world.comm
        let variants = try models.split(separator: ",").map { name -> String in
            guard Networks.names.contains(String(name)) else {
                throw ValidationError("--models: unknown model '\(name)' (one of \(Networks.names.joined(separator: ", ")))")
            }
            return String(name)
        }
        let mixes = try mix.split(separator: ",").map { name -> MixMethod in
            guard let m = MixMethod(rawValue: String(name)) else { throw ValidationError("--mix: unknown method '\(name)'") }
            return m
        }
        let precisions = try precision.split(separator: ",").map { name -> Precision in
            guard let p = Precision(rawValue: String(name)) else {
                throw ValidationError("--precision: unknown '\(name)' (one of \(Precision.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if let why = p.unsupportedReason { throw ValidationError("--precision \(name): \(why)") }
            return p
        }
        // Under MPI the thread count follows the ranks per node (World); alone, each requested count.
        let threadCounts = comm.size > 1 ? [world.threads] : threads.split(separator: ",").compactMap { Int($0) }
        // Which CPU and kernel sets measured the figures below (speed and rounding both depend on them).
        emit(Hardware.fields.merging(["kind": "hardware"]) { a, _ in a }, comm)
        for t in threadCounts {
            var peak = Double.nan
            if !skipSGEMM {
                BLAS.setBLASThreads(t)
                peak = sgemmPeak()
                emit(["kind": "sgemm", "threads": "\(t)", "gflops": fmt(peak), "blas_core": BLASCore.name], comm)
            }
            BLAS.setThreads(t)
            for v in variants {
              for p in precisions {
                for m in mixes {
                    let r = try TrainingBenchmark.run(model: v, batchSize: batchSize, imageSize: imageSize, mix: m,
                                                      steps: steps, precision: p, overlap: !noOverlap,
                                                      allReduceDtype: allreduceDtype, comm: comm)
                    let gflops = r.flopsPerImage * r.imagesPerSecond / 1e9
                    emit(["kind": "train", "model": v, "mix": m.rawValue, "precision": p.rawValue, "ranks": "\(comm.size)",
                          "threads": "\(t)", "batch": "\(batchSize)", "images_per_sec": fmt(r.imagesPerSecond),
                          "images_per_sec_mean": fmt(r.imagesPerSecondMean),
                          "step_ms": fmt(1000 * r.secondsPerStep), "gflops": fmt(gflops),
                          "fraction_of_sgemm_peak": fmt(gflops / (peak * Double(comm.size))),
                          "allreduce_wait_fraction": fmt(r.allReduceWaitFraction), "mixing_fraction": fmt(r.mixingFraction),
                          "overlap": "\(!noOverlap)", "allreduce_dtype": allreduceDtype.rawValue], comm)
                    if t == threadCounts.first && m == mixes.first {
                        for k in r.convolutionKernels {
                            emit(["kind": "conv", "model": v, "precision": p.rawValue, "shape": k.shape, "kernels": k.kernels,
                                  "gflops": fmt(k.gflops), "step_fraction": fmt(k.stepFraction)], comm)
                        }
                    }
                }
              }
            }
        }
    }

    private func fmt(_ x: Double) -> String { x.isFinite ? String(format: "%.4f", x) : "null" }

    private func emit(_ fields: [String: String], _ comm: Communicator) {
        guard comm.rank == 0 else { return }
        if json {
            let body = fields.keys.sorted().map { k in
                let v = fields[k]!
                return Double(v) != nil || v == "null" || v == "true" || v == "false" ? "\"\(k)\": \(v)" : "\"\(k)\": \"\(v)\""
            }
            writeLine("{" + body.joined(separator: ", ") + "}")
        } else {
            writeLine(fields.keys.sorted().map { "\($0)=\(fields[$0]!)" }.joined(separator: "  "))
        }
    }

    /// Best of several 2048³ sgemms: OpenBLAS's peak on this machine and thread count.
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
}
