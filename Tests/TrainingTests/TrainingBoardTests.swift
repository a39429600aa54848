import Foundation
import TensorBoard
import XCTest
@testable import Training

/// A real run's event file against its metrics.jsonl (the format itself: Tests/TensorBoardTests).
/// (`launch/checks/tensorboard_check.py` reads the same files with the `tensorboard` package itself.)
final class TrainingBoardTests: XCTestCase {
    /// A short run: its event file holds train/loss and train/lr every 2 steps, and every number of each
    /// metrics.jsonl row as epoch/<key> at that row's step; `--no-tensorboard` writes no file.
    func testARunsEventFileMatchesItsMetrics() throws {
        let tmp = NSTemporaryDirectory() + "tbrun-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var c = try DeterminismTests.config(seed: 5, out: tmp + "/on")
        c.maxSteps = nil
        c.trainLimit = 64
        c.valLimit = 32
        c.epochs = 2
        c.tensorboardEvery = 2
        c.mix = .rm
        try Trainer(config: c).run(log: { _ in })
        let files = try FileManager.default.contentsOfDirectory(atPath: c.out).filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(files.count, 1)
        let events = try EventRecords.read(c.out + "/" + files[0])
        var scalars: [String: [Int64: Float]] = [:]
        for e in events { for v in e.summary.value { scalars[v.tag, default: [:]][e.step] = v.simpleValue } }
        XCTAssertEqual(scalars["train/loss"].map { $0.keys.sorted() }, [2, 4])
        XCTAssertEqual(scalars["train/lr"]?.count, 2)
        // The rows' numbers as the file spells them, read with Double(String) (correctly rounded):
        // JSONSerialization's reading can be off by an ulp, which shows once narrowed to Float.
        let rows = try String(contentsOfFile: c.out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { line in Dictionary(line.matches(of: /"([A-Za-z0-9_.+-]+)": (-?[0-9][0-9.eE+-]*)/).map { (String($0.1), String($0.2)) },
                                      uniquingKeysWith: { a, _ in a }) }
        XCTAssertEqual(rows.count, 2)
        var compared = 0
        for row in rows {
            let step = Int64(try XCTUnwrap(row["step"].flatMap { Int($0) }))
            for (key, text) in row where key != "epoch" && key != "step" {
                let number = try XCTUnwrap(Double(text), "\(key): \(text)")
                let got = try XCTUnwrap(scalars["epoch/" + key]?[step], "epoch/\(key) at step \(step)")
                XCTAssertEqual(Double(got), Double(Float(number)), accuracy: 1e-12, "epoch/\(key)")
                compared += 1
            }
        }
        XCTAssertGreaterThan(compared, 20)
        // One picture of the mixed batches per epoch (2 steps an epoch: 2 rows), a PNG, at the last row's step.
        let pictures = events.flatMap { e in e.summary.value.filter { $0.tag == "mixed_batches" }.map { (e.step, $0.image) } }
        XCTAssertEqual(pictures.map(\.0), [2, 4])
        for (_, image) in pictures {
            XCTAssertEqual(image.encodedImageString.prefix(8), Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
            XCTAssertGreaterThan(image.width, 100)
            XCTAssertGreaterThan(image.height, 100)
        }

        c.out = tmp + "/off"
        c.noTensorboard = true
        c.epochs = 1
        c.maxSteps = 1
        try Trainer(config: c).run(log: { _ in })
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: c.out).contains { $0.hasPrefix("events.out") })
    }
}
