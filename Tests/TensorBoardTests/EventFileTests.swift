import Foundation
import TensorBoard
import XCTest

/// The event file format (TFRecord framing, CRC-32C, the Event and Summary messages) read back by our own
/// reader; a run's file against its metrics is TrainingTests' `TrainingBoardTests`.
final class EventFileTests: XCTestCase {
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
}
