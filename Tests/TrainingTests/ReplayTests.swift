import Distributed
import Foundation
import Kernels
import Layers
import Models
import Optim
import XCTest
import DataPipeline
@testable import Training

/// The training step against an independent PyTorch implementation of RecursiveMix, without torch in CI.
/// Golden/rmtrace holds an 8-step trace of ResNet-8 (the batches as loaded, the boxes drawn) and, from
/// `launch/checks/rm_golden.py` (plain torch + torchvision), the float64 reference's step from each state
/// of a chain of float32 states, with PyTorch float32's own error on each quantity from the same state.
/// Regenerate with Golden/make_rmtrace.sh.
///
/// Why step by step, and why these tolerances (issue #22): a free-running float32 trajectory of this trace
/// is chaotic (tiny batches, constant-border crops, BatchNorm channels of small variance), so its losses
/// after three steps differ by 0.1-0.7 % between OpenBLAS's Prescott, Haswell and SkylakeX kernels, and a
/// test of it holds only on the machine that made its golden file. One step from given weights is
/// well-conditioned; how far a correct float32 code lands from float64 on it is measured by PyTorch's
/// float32 step, and ours must stay within `factor` times that (or `floor`, where PyTorch was lucky).
final class ReplayTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Golden/rmtrace").path
    /// Ours may be this many times as far from float64 as PyTorch's float32 step is: two float32 codes that
    /// sum in other orders land at comparable distances, while a wrong formula is off by orders more
    /// (`testReplayDetectsAChangedRecipe`). Measured 2026-12-04 on an Intel Xeon (family 6 model 207, AVX-512):
    /// over OpenBLAS's Prescott, Haswell, SkylakeX and Cooperlake kernels, oneDNN with and without the AVX2
    /// cap and the portable convolutions, ours was at most 7.1× PyTorch's error, and only where PyTorch's
    /// was a lucky few ulps (3e-7); against the floor below, at most 1×.
    static let factor = 8.0
    /// The least error any float32 code may be allowed: a gradient here sums up to ~500 products per
    /// element, whose rounding grows like √n units in the last place (≈ 22 ulps); 32 ulps ≈ 3.8e-6.
    static let floor = 32.0 * Double(Float.ulpOfOne)

    func path(_ name: String) -> String { (ReplayTests.folder as NSString).appendingPathComponent(name) }

    /// One quantity's comparison: our relative error from float64, and what it may be.
    struct Check { var what: String; var error: Double; var limit: Double }

    override func tearDown() { ConvBackend.current = .onednn }

    func testEachStepMatchesPyTorchReferencePortable() throws {
        ConvBackend.current = .portable
        try assertWithinLimits(replay())
    }

    func testEachStepMatchesPyTorchReferenceOneDNN() throws {
        ConvBackend.current = .onednn
        try assertWithinLimits(replay())
    }

    func assertWithinLimits(_ checks: [Check]) {
        XCTAssertGreaterThan(checks.count, 8 * 20, "every step's loss, updates and statistics are compared")
        for c in checks where !(c.error <= c.limit) {
            XCTFail("\(c.what): relative error \(c.error) from float64, limit \(c.limit)")
        }
        if ProcessInfo.processInfo.environment["RMTRAIN_REPLAY_REPORT"] != nil {
            for c in checks.sorted(by: { $0.error / $0.limit > $1.error / $1.limit }).prefix(4) {
                print("replay: \(c.what): \(c.error), \(c.error / c.limit * ReplayTests.factor)× PyTorch's (or the floor)")
            }
        }
    }

    /// The comparison can fail: another consistency weight ω changes the loss of a mixed step (weight decay
    /// cannot: each step starts from the reference's weights), and another weight decay changes the update
    /// of step 1 (ω cannot: nothing is mixed before there is a history).
    func testReplayDetectsAChangedRecipe() throws {
        ConvBackend.current = .portable
        let checks = try replay(omegaFactor: 0.5, weightDecayFactor: 2)
        let wrong = checks.filter { $0.error > 10 * $0.limit }.map(\.what)
        XCTAssertTrue(wrong.contains { $0.hasPrefix("loss") && !$0.hasSuffix("step 1") }, "\(wrong)")
        XCTAssertTrue(wrong.contains { $0.hasPrefix("update") && $0.hasSuffix("step 1") }, "\(wrong)")
    }

    /// Feeds the traced batches through StepEngine and SGD as the trainer does, from the reference's state
    /// before each step, and compares the loss, every parameter's update and every BN statistic after it.
    func replay(omegaFactor: Double = 1, weightDecayFactor: Double = 1) throws -> [Check] {
        let meta = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("meta.json")))) as? [String: Any])
        let settings = try XCTUnwrap(meta["settings"] as? [String: String])
        let shape = try XCTUnwrap(meta["image_shape"] as? [Int])
        let classes = try XCTUnwrap(meta["num_classes"] as? Int)
        var c = TrainConfig()
        c.model = try XCTUnwrap(settings["model"])
        c.mix = try XCTUnwrap(MixMethod(rawValue: settings["mix"] ?? ""))
        c.rmAlpha = try XCTUnwrap(Double(settings["rm-alpha"] ?? ""))
        c.rmOmega = try XCTUnwrap(Double(settings["rm-omega"] ?? ""))
        c.seed = try XCTUnwrap(UInt64(settings["seed"] ?? ""))
        c.batchSize = try XCTUnwrap(Int(settings["batch-size"] ?? ""))
        c.wd = try XCTUnwrap(Double(settings["wd"] ?? ""))
        c.momentum = try XCTUnwrap(Double(settings["momentum"] ?? ""))
        // The recipe rebuilt here must be the traced one: every other training setting at its default (a setting
        // the trace does not name did not exist when it was made: its default is what ran).
        for (key, value) in c.settings where !["out", "data", "epochs", "lr", "max-steps", "train-limit", "val-limit",
                                                "image-size", "loader-threads"].contains(key) {
            XCTAssertEqual(settings[key] ?? value, value, "the trace was made with --\(key) \(settings[key] ?? "?")")
        }
        c.rmOmega *= omegaFactor
        c.noOverlap = true

        let model = try XCTUnwrap(Networks.make(c.model, inChannels: shape[2], numClasses: classes))
        let mixing = makeMixingMethod(c.mixing, batchSize: c.batchSize, seed: c.seed, classes: classes,
                                      sample: (shape[0], shape[1], shape[2]), model: model, rank: 0)
        let engine = StepEngine(model: model, mixing: mixing, comm: SingleProcess(), options: StepEngine.Options(c.run, c.allReduce))
        let params = engine.trainableParameters, buffers = model.buffers
        let sgd = SGD(parameters: params, momentum: Float(c.momentum), weightDecay: Float(c.wd * weightDecayFactor))
        // The chain of states (rm_golden.py): s_1 the initial weights, s_{n+1} = s_n + u_n in float32.
        let initial = try SafeTensors.read(path("weights-initial.safetensors"))
        var state = [String: [Float]]()
        for name in params.map(\.name) + buffers.map(\.name) { state[name] = try XCTUnwrap(initial[name]).values }

        let reference = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("reference.json"))))
                                      as? [String: Any])
        let rows = try XCTUnwrap(reference["steps"] as? [[String: Any]])
        var checks = [Check](), epoch = 0, mixedSteps = 0
        func limit(_ pytorchError: Double) -> Double { ReplayTests.factor * max(pytorchError, ReplayTests.floor) }
        for row in rows {
            let n = try XCTUnwrap(row["step"] as? Int)
            let file = path(String(format: "step-%06d.safetensors", n))
            let rec = try SafeTensors.read(file)
            let m = try SafeTensors.metadata(file)
            let labels = try XCTUnwrap(rec["labels"]).values.map { Int($0) }
            let e = try XCTUnwrap(Int(m["epoch"] ?? ""))
            if e != epoch { engine.startEpoch(); epoch = e }
            for p in params { p.value.copy(from: Tensor(shape: p.value.shape, values: state[p.name]!)) }
            for b in buffers { b.value.copy(from: Tensor(shape: b.value.shape, values: state[b.name]!)) }

            let batch = Batch(images: try tensor(rec, "images"), labels: labels)
            let stats = try engine.step(batch, step: n - 1).stats
            // The same seed draws the same boxes (draws depend on the seed and the step only).
            XCTAssertLessThanOrEqual(maxDifference(batch.images, try tensor(rec, "mixed")), 1e-6, "mixed batch of step \(n)")
            if m["mix_kind"] == "rm" { mixedSteps += 1 }
            sgd.step(lr: Float(try XCTUnwrap(Double(m["lr"] ?? ""))))

            let loss = try XCTUnwrap(row["loss"] as? Double), loss32 = try XCTUnwrap(row["loss_f32"] as? Double)
            checks.append(Check(what: "loss of step \(n)", error: abs(stats.loss - loss) / abs(loss),
                                limit: limit(abs(loss32 - loss) / abs(loss))))
            let golden = try SafeTensors.read(path(String(format: "reference-%06d.safetensors", n)))
            let updateErrors = try XCTUnwrap(row["update_f32"] as? [String: Double])
            for p in params {
                let u = try XCTUnwrap(golden["update/" + p.name], "no update of \(p.name)").values
                let s = state[p.name]!
                let ours = (0..<u.count).map { Double(p.value[$0]) - Double(s[$0]) }
                checks.append(Check(what: "update of \(p.name) at step \(n)", error: relative(ours, u.map(Double.init)),
                                    limit: limit(try XCTUnwrap(updateErrors[p.name]))))
                state[p.name] = zip(s, u).map { $0 + $1 }          // Float + Float: correctly rounded everywhere
            }
            let bufferErrors = try XCTUnwrap(row["buffer_f32"] as? [String: Double])
            for b in buffers {
                let after = try XCTUnwrap(golden["after/" + b.name], "no \(b.name)").values
                checks.append(Check(what: "\(b.name) after step \(n)",
                                    error: relative((0..<after.count).map { Double(b.value[$0]) }, after.map(Double.init)),
                                    limit: limit(try XCTUnwrap(bufferErrors[b.name]))))
                state[b.name] = after
            }
        }
        XCTAssertGreaterThanOrEqual(mixedSteps, 4, "the trace must exercise RecursiveMix")
        return checks
    }

    /// ‖a − b‖ / ‖b‖.
    func relative(_ a: [Double], _ b: [Double]) -> Double {
        var diff = 0.0, norm = 0.0
        for (x, y) in zip(a, b) { diff += (x - y) * (x - y); norm += y * y }
        return diff.squareRoot() / max(norm.squareRoot(), 1e-30)
    }

    func tensor(_ entries: [String: SafeTensors.Entry], _ name: String) throws -> Tensor {
        let e = try XCTUnwrap(entries[name], "no \(name) in the golden files")
        return Tensor(shape: e.shape, values: e.values)
    }

    func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
        XCTAssertEqual(a.shape, b.shape)
        var m: Float = 0
        for i in 0..<min(a.count, b.count) { m = max(m, abs(a[i] - b[i])) }
        return m
    }
}
