import Foundation
import XCTest
import Kernels
@testable import Checkpoint

/// The checkpoint file (header, zstd sections, per-section FNV-1a) and the store (atomic writes, pruning,
/// falling back past a bad newest file), without a training run.
final class CheckpointFileTests: XCTestCase {
    private func state(step: Int, ranks: Int = 2) -> CheckpointState {
        let header = CheckpointHeader(model: "resnet8", shapes: ["w": [2, 3]], configuration: ["lr=0.1", "seed=\(step)"],
                                      configurationHash: "abc", worldSize: ranks, epoch: 1, batchInEpoch: 3, step: step,
                                      valTop1History: [0.25, 0.5])
        let w = SafeTensors.Entry(name: "w", shape: [2, 3], values: (0..<6).map { Float($0) * 0.5 + Float(step) })
        let perRank = (0..<ranks).map { r in [SafeTensors.Entry(name: "history.count", shape: [1], values: [Float(r)]),
                                              SafeTensors.Entry(name: "empty", shape: [0], values: [])] }
        return CheckpointState(header: header, tensors: [w], ranks: perRank)
    }

    private func dir() throws -> String {
        let d = NSTemporaryDirectory() + "rmtrain-ckpt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    func testRoundTripKeepsEveryFieldAndValue() throws {
        let s = state(step: 7)
        let back = try CheckpointFile.decode(try CheckpointFile.encode(s, level: 3), source: "mem")
        var expected = s.header
        expected.sections = back.header.sections
        XCTAssertEqual(back.header, expected)
        XCTAssertEqual(back.tensors.map(\.name), ["w"])
        XCTAssertEqual(back.tensors[0].values, s.tensors[0].values)
        XCTAssertEqual(back.ranks.count, 2)
        XCTAssertEqual(back.ranks[1].first { $0.name == "history.count" }?.values, [1])
        XCTAssertEqual(back.ranks[0].first { $0.name == "empty" }?.shape, [0])
    }

    /// The names are format 1's: every checkpoint written so far uses these spellings, and a resume or
    /// an export of one looks its tensors up by them. A rename here would make those files unreadable.
    func testNamesAreFormatOnesSpellings() throws {
        XCTAssertEqual([CheckpointNames.sharedSection, CheckpointNames.rankSection(0), CheckpointNames.rankSection(12),
                        CheckpointNames.momentum, CheckpointNames.ema, CheckpointNames.rankBuffer, CheckpointNames.rankEMABuffer],
                       ["tensors", "rank0", "rank12", "momentum.", "ema.", "rank_buffer.", "rank_ema_buffer."])
        XCTAssertEqual(CheckpointNames.rank(ofSection: "rank12"), 12)
        XCTAssertNil(CheckpointNames.rank(ofSection: "tensors"))
        XCTAssertNil(CheckpointNames.rank(ofSection: "rankx"))
        // The sections of a written file carry those names.
        let back = try CheckpointFile.decode(try CheckpointFile.encode(state(step: 2), level: 3), source: "mem")
        XCTAssertEqual(back.header.sections.map(\.name), ["tensors", "rank0", "rank1"])
    }

    /// A truncated file and a flipped byte are refused with the file named, never half-loaded.
    func testTruncatedAndCorruptFilesAreRefused() throws {
        let bytes = try CheckpointFile.encode(state(step: 1), level: 3)
        for cut in [0, 3, bytes.count / 2, bytes.count - 1] {
            XCTAssertThrowsError(try CheckpointFile.decode(Array(bytes.prefix(cut)), source: "cut.rmck"), "cut at \(cut)") { e in
                XCTAssertTrue("\(e)".contains("cut.rmck"), "\(e)")
            }
        }
        var flipped = bytes
        flipped[bytes.count - 5] ^= 0x40
        XCTAssertThrowsError(try CheckpointFile.decode(flipped, source: "flip.rmck")) { e in
            XCTAssertTrue("\(e)".contains("flip.rmck"), "\(e)")
        }
    }

    /// `--resume auto` moves a checkpoint that does not verify aside: left, it would outrank (and under `--keep`
    /// outlive) every checkpoint the resumed run writes.
    func testNewestValidMovesABadFileAside() throws {
        let d = try dir()
        let store = CheckpointStore(directory: d)
        for step in [5, 10] {
            try CheckpointStore.writeAtomically(try CheckpointFile.encode(state(step: step), level: 1), to: store.path(step: step))
        }
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: store.path(step: 10)))
        var warnings: [String] = []
        XCTAssertEqual(store.newestValid(warn: { warnings.append($0) }, moveAside: true)?.state.header.step, 5)
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].hasSuffix("moved aside as ckpt-000000010.rmck.corrupt"), warnings[0])
        XCTAssertTrue(FileManager.default.fileExists(atPath: store.path(step: 10) + ".corrupt"))
        XCTAssertEqual(store.candidates(), [store.path(step: 5)])
    }

    func testStoreWritesAtomicallyPrunesAndFallsBackPastABadNewestFile() throws {
        let d = try dir()
        let store = CheckpointStore(directory: d)
        for step in [5, 10, 15] {
            try CheckpointStore.writeAtomically(try CheckpointFile.encode(state(step: step), level: 1), to: store.path(step: step))
        }
        XCTAssertEqual(store.candidates().map { ($0 as NSString).lastPathComponent },
                       ["ckpt-000000015.rmck", "ckpt-000000010.rmck", "ckpt-000000005.rmck"])
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: d).contains { $0.contains("tmp") },
                       "no temporary file is left behind")
        // The newest is truncated (a crash while copying it elsewhere, a full disk): the previous one is used.
        let newest = store.path(step: 15)
        let data = try XCTUnwrap(FileManager.default.contents(atPath: newest))
        try data.prefix(data.count / 3).write(to: URL(fileURLWithPath: newest))
        var warnings: [String] = []
        let found = try XCTUnwrap(store.newestValid { warnings.append($0) })
        XCTAssertEqual(found.state.header.step, 10)
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].contains("ckpt-000000015.rmck"), warnings[0])
        store.prune(keep: 1)
        XCTAssertEqual(store.candidates().map { ($0 as NSString).lastPathComponent }, ["ckpt-000000015.rmck"])
        XCTAssertThrowsError(try CheckpointStore.read(d + "/missing.rmck")) { e in
            XCTAssertTrue("\(e)".contains("missing.rmck"), "\(e)")
        }
    }
}

/// The recorded input (`InputSpec`) round-trips, and a header written before it existed still decodes.
final class CheckpointInputTests: XCTestCase {
    func testInputRoundTripsAndOlderHeadersDecodeWithout() throws {
        var header = CheckpointHeader(model: "resnet8", shapes: [:], configuration: [], configurationHash: "0", worldSize: 1,
                                      epoch: 0, batchInEpoch: 0, step: 0, valTop1History: [])
        let old = try JSONEncoder().encode(header)
        XCTAssertFalse(String(decoding: old, as: UTF8.self).contains("input"))
        XCTAssertNil(try JSONDecoder().decode(CheckpointHeader.self, from: old).input)
        header.input = InputSpec(imageSize: 16, channels: 3, resize: "cifar", mean: [0.4914, 0.4822, 0.4465],
                                 std: [0.2023, 0.1994, 0.2010], classNames: ["cat", "airplane"])
        let state = CheckpointState(header: header, tensors: [], ranks: [[]])
        let back = try CheckpointFile.decode(try CheckpointFile.encode(state, level: 1), source: "mem")
        XCTAssertEqual(back.header.input, header.input)
    }
}
