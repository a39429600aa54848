import Foundation
import XCTest
import Kernels
import Models
import Checkpoint
@testable import rmtrain
@testable import Training

/// `--init-weights`: files written by the `safetensors` package (F32, F16, BF16) give PyTorch's logits; an
/// exported checkpoint starts a run with identical logits; a 10-class file fine-tunes on 3 classes.
final class InitWeightsTests: XCTestCase {
    private static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden").path

    func testSafetensorsPackageFileGivesPyTorchsLogits() throws {
        let model = try XCTUnwrap(Networks.make("resnet8", inChannels: 3, numClasses: 10))
        model.initialize(seed: 1)
        let notes = try InitWeights.load(Self.golden + "/init_weights.safetensors", into: model)
        XCTAssertEqual(notes, [])
        let expected = try SafeTensors.read(Self.golden + "/init_weights_expected.safetensors")
        let x = try XCTUnwrap(expected["input_nhwc"]), want = try XCTUnwrap(expected["logits"])
        let logits = model.forward(Tensor(shape: x.shape, values: x.values), training: false)
        for (a, b) in zip(logits.array, want.values) { XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, abs(b))) }
    }

    private func folder(_ classes: Int, perClass: Int = 6) throws -> String {
        try TestFolders.cifar(classes: classes, perClass: perClass, test: self)
    }

    private func config(_ data: String, out: String) -> TrainConfig {
        var c = TrainConfig()
        c.data = "imagefolder:" + data
        c.model = "resnet8"
        c.batchSize = 10
        c.epochs = 1
        c.quiet = true
        c.out = out
        c.mix = .rm
        return c
    }

    func testExportThenInitGivesIdenticalLogitsAndFineTunesOnThreeClasses() throws {
        let ten = try folder(10), three = try folder(3)
        let run = NSTemporaryDirectory() + "initw-run-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: run) }
        let source = try Trainer(config: config(ten, out: run + "/a"))
        try source.run(log: { _ in })
        try ExportCommand.parse(["--checkpoint", run + "/a/best.rmck", "--out", run + "/m.safetensors"]).run()

        var c = config(ten, out: run + "/b")
        c.initWeights = run + "/m.safetensors"
        let started = try Trainer(config: c)
        XCTAssertEqual(started.startNotes, ["--init-weights: loaded \(run)/m.safetensors",
                                            "--init-weights: image size 32, the file's (--image-size overrides it)"])
        let reference = try Evaluator.model(from: try CheckpointStore.read(run + "/a/best.rmck"), path: "a",
                                            data: started.data.train)
        let x = Tensor(shape: [2, 32, 32, 3])
        for i in 0..<x.count { x[i] = Float(i % 17) / 17 - 0.5 }
        XCTAssertEqual(started.model.forward(x, training: false).array, reference.forward(x, training: false).array)

        // Three of its classes (airplane, automobile, bird): the file names its classes, so their rows are taken by name.
        var fine = config(three, out: run + "/c")
        fine.initWeights = run + "/m.safetensors"
        let t = try Trainer(config: fine)
        XCTAssertEqual(t.model.numClasses, 3)
        XCTAssertTrue(t.startNotes.contains("--init-weights: classifier rows taken by class name: the data's 3 classes from the file's 10"),
                      "\(t.startNotes)")
        let fcWeight = try XCTUnwrap(reference.parameters.first { $0.name == "fc.weight" }?.value.array)
        XCTAssertEqual(t.model.parameters.first { $0.name == "fc.weight" }?.value.array, Array(fcWeight.prefix(3 * fcWeight.count / 10)))
        XCTAssertEqual(t.model.parameters.first { $0.name == "conv1.weight" }?.value.array,
                       reference.parameters.first { $0.name == "conv1.weight" }?.value.array)
        try t.run(log: { _ in })
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/c/final.safetensors"))

        // A class the file does not know: another label set, the classifier starts fresh.
        for split in ["train", "test"] { try FileManager.default.moveItem(atPath: "\(three)/\(split)/airplane", toPath: "\(three)/\(split)/plane") }
        var other = config(three, out: run + "/d")
        other.initWeights = run + "/m.safetensors"
        let o = try Trainer(config: other)
        XCTAssertTrue(o.startNotes.contains("--init-weights: classifier re-initialised: 1 of the data's 3 classes are not among the file's 10 (first: plane)"),
                      "\(o.startNotes)")
        XCTAssertNotEqual(o.model.parameters.first { $0.name == "fc.weight" }?.value.array, Array(fcWeight.prefix(3 * fcWeight.count / 10)))
    }

    /// The exported file carries the checkpoint's input; fine-tuning from it defaults to its image size, and an
    /// --image-size that overrides it is said.
    func testExportCarriesTheInputAndInitWeightsDefaultsToItsImageSize() throws {
        let three = try folder(3, perClass: 2)
        let run = NSTemporaryDirectory() + "initw-size-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: run) }
        var c = config(three, out: run + "/a")
        c.imageSize = 16
        try trainAndExport(c, to: run + "/m.safetensors")
        let meta = try SafeTensors.metadata(run + "/m.safetensors")
        XCTAssertEqual(meta["image_size"], "16")
        XCTAssertEqual(meta["classes"], "[\"airplane\",\"automobile\",\"bird\"]")
        XCTAssertEqual(ModelInput.spec(metadata: meta), try CheckpointStore.read(run + "/a/best.rmck").header.input)

        var fine = config(three, out: run + "/b")
        fine.initWeights = run + "/m.safetensors"
        XCTAssertEqual(try Trainer(config: fine).data.train.sampleShape.height, 16)
        fine.imageSize = 24
        let t = try Trainer(config: fine)
        XCTAssertEqual(t.data.train.sampleShape.height, 24)
        XCTAssertTrue(t.startNotes.contains("--init-weights: --image-size 24 overrides \(run)/m.safetensors's input: image size 24 (trained at 16)"),
                      "\(t.startNotes)")
    }

    /// `export --ema` writes the average kept with `--model-ema`: loaded back, it equals the checkpoint's average.
    func testExportOfTheMovingAverage() throws {
        let ten = try folder(10, perClass: 3)
        let run = NSTemporaryDirectory() + "initw-ema-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: run) }
        var c = config(ten, out: run + "/a")
        c.modelEma = 0.5
        try trainAndExport(c, to: run + "/ema.safetensors", ["--ema"])
        let model = try XCTUnwrap(Networks.make("resnet8", inChannels: 3, numClasses: 10))
        XCTAssertEqual(try InitWeights.load(run + "/ema.safetensors", into: model), [])
        let saved = Dictionary(uniqueKeysWithValues: try CheckpointStore.read(run + "/a/best.rmck").tensors.map { ($0.name, $0) })
        for p in model.parameters { XCTAssertEqual(p.value.array, saved[CheckpointNames.ema + p.name]?.values, p.name) }
        XCTAssertNotEqual(model.parameters[0].value.array, saved[model.parameters[0].name]?.values, "the average is not the weights")
    }

    /// Trains `c` and exports its best checkpoint (with the `export` flags `extra`) to `out`.
    private func trainAndExport(_ c: TrainConfig, to out: String, _ extra: [String] = []) throws {
        try Trainer(config: c).run(log: { _ in })
        try ExportCommand.parse(["--checkpoint", c.out + "/best.rmck", "--out", out] + extra).run()
    }

    func testAnotherShapeIsAnErrorNamingTheTensor() throws {
        let model = try XCTUnwrap(Networks.make("resnet20", inChannels: 3, numClasses: 10))
        XCTAssertThrowsError(try InitWeights.load(Self.golden + "/init_weights.safetensors", into: model)) { e in
            XCTAssertTrue("\(e)".hasPrefix("--init-weights \(Self.golden)/init_weights.safetensors: "), "\(e)")
            XCTAssertTrue("\(e)".contains("layer"), "\(e)")
        }
    }
}

/// Small image folders copied from the shared CIFAR-10 images (never into the repository).
