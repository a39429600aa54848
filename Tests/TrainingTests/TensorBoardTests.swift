import Foundation
import TensorBoard
import XCTest
@testable import Training

/// The event file format (TFRecord framing, CRC-32C, the Event and Summary messages) read back by our own
/// reader, and a real run's file against its metrics.jsonl. (`launch/checks/tensorboard_check.py` reads the
/// same files with the `tensorboard` package itself.)
final class TensorBoardTests: XCTestCase {
    func testCRC32CKnownValues() {
        // RFC 3720 B.4 / the usual check value of CRC-32C.
        XCTAssertEqual(CRC32C.checksum(Data("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum(Data(repeating: 0, count: 32)), 0x8A91_36AA)
    }

    /// A relaunch within the same second (a requeue, a resume) must not truncate the previous launch's file.
    func testTwoWritersInTheSameSecondWriteTwoFiles() throws {
        let dir = NSTemporaryDirectory() + "tb-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let now = Date()
        let first = try EventWriter(directory: dir, wallTime: now)
        try first.scalar("train/loss", 1, step: 1)
        let second = try EventWriter(directory: dir, wallTime: now)
        try second.scalar("train/loss", 2, step: 2)
        XCTAssertNotEqual(first.path, second.path)
        XCTAssertTrue((first.path as NSString).lastPathComponent.hasPrefix("events.out.tfevents.\(Int(now.timeIntervalSince1970))."))
        XCTAssertEqual(try EventRecords.read(first.path).map(\.step), [0, 1])
        XCTAssertEqual(try EventRecords.read(second.path).map(\.step), [0, 2])
    }

    func testWriteThenReadEveryRecord() throws {
        let dir = NSTemporaryDirectory() + "tb-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try EventWriter(directory: dir)
        try w.scalar("train/loss", 2.5, step: 10)
        try w.scalars([("a", 1), ("b", -0.125)], step: 11)
        try w.image("batch", png: Data([0x89, 0x50, 0x4E, 0x47]), width: 3, height: 2, step: 12)
        let events = try EventRecords.read(w.path)
        XCTAssertEqual(events.count, 4)
        XCTAssertEqual(events[0].fileVersion, "brain.Event:2")
        XCTAssertEqual(events[1].step, 10)
        XCTAssertEqual(events[1].summary.value.first?.tag, "train/loss")
        XCTAssertEqual(events[1].summary.value.first?.simpleValue, 2.5)
        XCTAssertEqual(events[2].summary.value.map(\.tag), ["a", "b"])
        XCTAssertEqual(events[2].summary.value.map(\.simpleValue), [1, -0.125])
        XCTAssertEqual(events[3].summary.value.first?.image.width, 3)
        XCTAssertEqual(events[3].summary.value.first?.image.encodedImageString, Data([0x89, 0x50, 0x4E, 0x47]))

        // A flipped byte or a cut file is reported, not read as something else.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: w.path))
        bytes[bytes.count - 6] ^= 0x40
        let broken = dir + "/broken"
        try bytes.write(to: URL(fileURLWithPath: broken))
        XCTAssertThrowsError(try EventRecords.read(broken)) { XCTAssertTrue("\($0)".contains("checksum"), "\($0)") }
        try bytes.prefix(bytes.count - 3).write(to: URL(fileURLWithPath: broken))
        XCTAssertThrowsError(try EventRecords.read(broken)) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
    }

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
