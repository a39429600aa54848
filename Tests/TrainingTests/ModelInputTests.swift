import Foundation
import XCTest
import Checkpoint
import DataPipeline
import Kernels
@testable import Training

/// `ModelInput`: the checkpoint's input is the default, a flag that overrides it is one note, a difference no
/// flag asked for is refused in evaluation, and checkpoints without a recorded input fall back with a note.
final class ModelInputTests: XCTestCase {
    /// A data set of `size`-pixel images with the normalisation of its pipeline, as the image sets have.
    final class Images: Dataset, @unchecked Sendable {
        let size: Int
        init(_ size: Int) { self.size = size }
        var name: String { "images" }
        var count: Int { 1 }
        var numClasses: Int { 2 }
        var classNames: [String] { ["cat", "dog"] }
        var sampleShape: (height: Int, width: Int, channels: Int) { (size, size, 3) }
        var normalization: Normalization { size <= 32 ? .cifar : .imageNet }
        func label(_ index: Int) -> Int { 0 }
        func load(_ index: Int, augment: Bool, rng: inout RandomStream, into out: UnsafeMutablePointer<Float>) throws {}
    }

    func testImageSizeDefaultsToTheCheckpointsThenItsConfiguration() {
        let spec = ModelInput.spec(of: Images(16))
        XCTAssertEqual(spec.imageSize, 16)
        XCTAssertEqual(spec.classNames, ["cat", "dog"])
        XCTAssertEqual(spec.mean, Normalization.cifar.mean)
        XCTAssertEqual(ModelInput.imageSize(flag: nil, recorded: spec, configuration: ["image-size=64"], data: "imagefolder:x"), 16)
        XCTAssertEqual(ModelInput.imageSize(flag: 32, recorded: spec, data: "imagefolder:x"), 32)
        // Older checkpoints: the run's --image-size from its configuration lines, else the data's default (nil).
        XCTAssertEqual(ModelInput.imageSize(flag: nil, recorded: nil, configuration: ["lr=0.1", "image-size=64"], data: "shards:x"), 64)
        XCTAssertNil(ModelInput.imageSize(flag: nil, recorded: nil, configuration: ["lr=0.1"], data: "imagefolder:x"))
        // Fashion-MNIST has one size: the data's, unless the flag asks (and the data refuses it then).
        XCTAssertNil(ModelInput.imageSize(flag: nil, recorded: spec, data: "fashion-mnist"))
    }

    func testNotesAndRefusals() throws {
        let spec = ModelInput.spec(of: Images(16))
        XCTAssertNil(try ModelInput.note(data: Images(16), recorded: spec, flag: nil, source: "a.rmck"))
        XCTAssertNil(try ModelInput.note(data: Images(16), recorded: spec, flag: 16, source: "a.rmck"))
        XCTAssertEqual(try ModelInput.note(data: Images(24), recorded: spec, flag: 24, source: "a.rmck"),
                       "--image-size 24 overrides a.rmck's input: image size 24 (trained at 16)")
        // Past 32 pixels the ImageNet pipeline's normalisation: said too.
        XCTAssertEqual(try ModelInput.note(data: Images(64), recorded: spec, flag: 64, source: "a.rmck"),
                       "--image-size 64 overrides a.rmck's input: image size 64 (trained at 16); Normalize(mean [0.485, 0.456, 0.406], "
                       + "std [0.229, 0.224, 0.225]) (trained with mean [0.4914, 0.4822, 0.4465], std [0.2023, 0.1994, 0.201])")
        XCTAssertThrowsError(try ModelInput.note(data: Images(24), recorded: spec, flag: nil, source: "a.rmck")) { e in
            XCTAssertTrue("\(e)".hasPrefix("a.rmck: the data gives another input than the model was trained with: image size 24"), "\(e)")
        }
        XCTAssertEqual(try ModelInput.note(data: Images(24), recorded: spec, flag: nil, source: "w.safetensors", refuseUnasked: false),
                       "w.safetensors was trained on another input: image size 24 (trained at 16)")
        XCTAssertTrue(try XCTUnwrap(try ModelInput.note(data: Images(16), recorded: nil, flag: nil, source: "old.rmck"))
                        .hasPrefix("old.rmck predates recorded input settings: image size 16"))
    }

    func testSafetensorsMetadataRoundTrip() {
        let spec = ModelInput.spec(of: Images(16))
        XCTAssertEqual(ModelInput.spec(metadata: ModelInput.metadata(spec)), spec)
        XCTAssertNil(ModelInput.spec(metadata: ["format": "pt"]))
    }
}
