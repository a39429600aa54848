import Foundation
import XCTest
@testable import Training

/// A requeued job may come back with more epochs, or with its data at another path: both resume, and the
/// log says what changed; other data at the new path is still refused.
final class ResumeChangesTests: XCTestCase {
    private func config(_ data: String, out: String, epochs: Int) -> TrainConfig {
        var c = TrainConfig()
        c.data = "imagefolder:" + data
        c.model = "resnet8"
        c.batchSize = 10
        c.epochs = epochs
        c.quiet = true
        c.out = out
        return c
    }

    func testMoreEpochsAndAMovedDataFolderResume() throws {
        let data = try TestFolders.cifar(classes: 4, perClass: 5, test: self)
        let run = NSTemporaryDirectory() + "resume-changes-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: run) }
        try Trainer(config: config(data, out: run, epochs: 1)).run(log: { _ in })

        let moved = data + "-moved"
        try FileManager.default.moveItem(atPath: data, toPath: moved)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: moved) }
        var c = config(moved, out: run, epochs: 3)
        c.resume = "auto"
        let t = try Trainer(config: c)
        var lines: [String] = []
        try t.run(log: { lines.append($0) })
        XCTAssertTrue(t.resumeNotes.contains { $0.hasPrefix("--epochs changed on resume (checkpoint epochs=1, now 3)") }, "\(t.resumeNotes)")
        XCTAssertTrue(t.resumeNotes.contains { $0.hasPrefix("the data moved (checkpoint data=imagefolder:\(data), now data=imagefolder:\(moved))") },
                      "\(t.resumeNotes)")
        let epochs = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.compactMap { $0["epoch"] as? Int }
        XCTAssertEqual(epochs, [1, 2, 3])

        // Other images at the new path: refused, naming the difference.
        let first = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: moved + "/train").sorted().first)
        let victim = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: "\(moved)/train/\(first)").sorted().first)
        try FileManager.default.removeItem(atPath: "\(moved)/train/\(first)/\(victim)")
        var other = config(moved, out: run, epochs: 4)
        other.resume = "auto"
        XCTAssertThrowsError(try Trainer(config: other).run(log: { _ in })) { e in
            XCTAssertTrue("\(e)".contains("the data differs from the checkpoint's"), "\(e)")
        }
    }

    /// A checkpoint written before a setting existed (its configuration lacks the key) ran with the setting's
    /// default: a resume with another value is a difference (checkSameRun refuses it), with the default none.
    func testASettingNewerThanTheCheckpointHadItsDefault() {
        let old = TrainConfig().fingerprint.filter { !$0.hasPrefix("sched-on=") }
        XCTAssertEqual(old.count, TrainConfig().fingerprint.count - 1)
        let recorded = Trainer.recordedConfiguration(old)
        XCTAssertEqual(recorded, Set(TrainConfig().fingerprint))
        var epochs = TrainConfig()
        epochs.schedOn = .epochs
        XCTAssertEqual(recorded.subtracting(epochs.fingerprint), ["sched-on=updates"])
    }
}
