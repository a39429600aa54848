import Foundation
import XCTest
import Checkpoint
@testable import rmtrain
@testable import Training

/// `rmtrain eval` on a checkpoint written before checkpoints recorded their input: it still evaluates, at the
/// `--image-size` its configuration recorded.
final class EvalCommandTests: XCTestCase {
    func testACheckpointWithoutARecordedInputStillEvaluatesAtItsConfiguredSize() throws {
        let data = try TestFolders.cifar(classes: 3, perClass: 4, test: self)
        let run = NSTemporaryDirectory() + "eval-old-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: run) }
        var c = TrainConfig()
        c.data = "imagefolder:" + data
        c.model = "resnet8"
        c.imageSize = 16
        c.batchSize = 4
        c.epochs = 1
        c.quiet = true
        c.out = run
        try Trainer(config: c).run(log: { _ in })
        var state = try CheckpointStore.read(run + "/best.rmck")
        XCTAssertEqual(state.header.input?.imageSize, 16)
        XCTAssertTrue(state.header.configuration.contains("image-size=16"), "\(state.header.configuration)")
        state.header.input = nil
        try CheckpointStore.writeAtomically(try CheckpointFile.encode(state, level: 1), to: run + "/old.rmck")
        XCTAssertNil(try CheckpointStore.read(run + "/old.rmck").header.input)
        XCTAssertEqual(ModelInput.imageSize(flag: nil, recorded: nil, configuration: state.header.configuration, data: c.data), 16)
        try EvalCommand.parse(["--checkpoint", run + "/old.rmck", "--data", c.data, "--json"]).run()
    }
}
