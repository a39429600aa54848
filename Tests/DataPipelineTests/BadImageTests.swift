import Foundation
import XCTest
import Kernels
@testable import DataPipeline

/// `--bad-image skip|fail` on a folder with a truncated JPEG and a file that is not an image.
final class BadImageTests: XCTestCase {
    var dir: String!
    var truncated: String!

    override func setUpWithError() throws {
        dir = try TestData.smallFolder(try TestData.tempDir("bad"), classes: 2, perClass: 3)
        let cls = try FileManager.default.contentsOfDirectory(atPath: "\(dir!)/train").sorted()[0]
        let good = try FileManager.default.contentsOfDirectory(atPath: "\(dir!)/train/\(cls)").sorted()[0]
        let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(dir!)/train/\(cls)/\(good)"))
        // Sorted after the 3 good files of class 0: index 3 of the train split.
        truncated = "\(dir!)/train/\(cls)/zz_truncated.jpg"
        try bytes.prefix(bytes.count / 3).write(to: URL(fileURLWithPath: truncated))
        try Data("not a picture".utf8).write(to: URL(fileURLWithPath: "\(dir!)/val/\(cls)/zz_text.png"))
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func open(_ policy: BadImagePolicy = .skip) throws -> DataSplits {
        var o = DataOptions()
        o.imageSize = 48
        o.badImage = policy
        return try openData("imagefolder:" + dir, options: o)
    }

    func testTruncatedJPEGIsABadImageNamingItsPath() throws {
        let ds = try open().train
        XCTAssertEqual(ds.count, 7)
        XCTAssertThrowsError(try TestData.sample(ds, 3, augment: true)) { e in
            XCTAssertTrue(e is BadImage, "\(e)")
            XCTAssertTrue("\(e)".contains(truncated) && "\(e)".contains("truncated"), "\(e)")
        }
    }

    /// A complete JPEG with one damaged restart interval (Golden/make_damaged_jpeg.py: bytes cut out of its
    /// entropy-coded data, so libjpeg warns "premature end of data segment") decodes as Pillow decodes it:
    /// it is loaded and logged as a damaged image, not skipped as a bad one. The same file cut short is
    /// still truncated.
    func testDamagedRestartIntervalDecodesWithAWarning() throws {
        let cls = try FileManager.default.contentsOfDirectory(atPath: "\(dir!)/train").sorted()[1]
        let damaged = "\(dir!)/train/\(cls)/zz_damaged.jpg"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: TestData.golden + "/damaged_restart.jpg"))
        try bytes.write(to: URL(fileURLWithPath: damaged))
        let splits = try open()
        let ds = splits.train as! ImageDataset
        XCTAssertEqual(ds.count, 8)
        XCTAssertEqual(ds.path(7), damaged)
        let sink = LineSink()
        ds.damagedImages = sink.log()
        let log = BadImageLog(sink: { _ in })
        let loader = BatchLoader(dataset: ds, sampler: DistributedSampler(count: 8, shuffle: false, seed: 1),
                                 batchSize: 8, augment: true, seed: 1, threads: 0, badImages: log)
        let batches = try TestData.epoch(loader, 0)
        XCTAssertEqual(batches[0].0, [0, 1, 2, 4, 4, 5, 6, 7])          // index 3 (truncated) replaced; 7 loaded
        XCTAssertEqual(log.count, 1)
        XCTAssertEqual(log.loggedPaths, [truncated])
        XCTAssertEqual(ds.damagedImages.damagedCount, 1)
        XCTAssertEqual(sink.lines.count, 1)
        XCTAssertTrue(sink.lines[0].contains("warning: damaged image \(damaged)") && sink.lines[0].contains("premature end of data segment"),
                      "\(sink.lines)")
        let (_, w, h) = try ds.decodeRGB(7)
        XCTAssertEqual([w, h], [64, 48])

        try bytes.prefix(bytes.count - 200).write(to: URL(fileURLWithPath: damaged))
        XCTAssertThrowsError(try TestData.sample(try open().train, 7, augment: false)) { e in
            XCTAssertTrue(e is BadImage && "\(e)".contains("truncated"), "\(e)")
        }
    }

    /// A JPEG cut inside its header fails in header parsing; libjpeg-turbo 2.1 then left the decoder in a
    /// state where the next, valid, file failed too. Each failure now gets a fresh decoder.
    func testAHeaderFailureDoesNotSpoilTheNextImage() throws {
        let cls = try FileManager.default.contentsOfDirectory(atPath: "\(dir!)/train").sorted()[0]
        let good = try FileManager.default.contentsOfDirectory(atPath: "\(dir!)/train/\(cls)").sorted()[0]
        let full = try Data(contentsOf: URL(fileURLWithPath: "\(dir!)/train/\(cls)/\(good)"))
        try full.prefix(300).write(to: URL(fileURLWithPath: truncated))
        let ds = try open().train
        let before = try TestData.sample(ds, 0, augment: false)
        XCTAssertThrowsError(try TestData.sample(ds, 3, augment: false)) { e in XCTAssertTrue(e is BadImage, "\(e)") }
        XCTAssertEqual(try TestData.sample(ds, 0, augment: false), before, "a good image after a bad header must decode")
    }

    func testSkipReplacesInTrainingAndDropsInEvaluation() throws {
        for threads in [0, 2] {
            let splits = try open()
            let sink = LineSink()
            let log = sink.log()
            let train = BatchLoader(dataset: splits.train, sampler: DistributedSampler(count: 7, shuffle: false, seed: 1),
                                    batchSize: 8, augment: true, seed: 1, threads: threads, badImages: log)
            let batches = try TestData.epoch(train, 0)
            XCTAssertEqual(batches.count, 1)
            // Training keeps the batch size: the bad index 3 is replaced by index 4 (the next that loads).
            XCTAssertEqual(batches[0].0, [0, 1, 2, 4, 4, 5, 6])
            XCTAssertEqual(batches[0].1, [0, 0, 0, 1, 1, 1, 1])
            // The replacement is index 4's own sample (same random stream), so the two copies are equal.
            let per = 48 * 48 * 3
            XCTAssertEqual(Array(batches[0].2[(3 * per)..<(4 * per)]), Array(batches[0].2[(4 * per)..<(5 * per)]))
            XCTAssertEqual(log.count, 1)
            XCTAssertEqual(log.loggedPaths, [truncated])
            XCTAssertTrue(sink.lines.count == 1 && sink.lines[0].contains(truncated), "\(sink.lines)")

            // Evaluation drops the bad image: every other image counted once.
            let val = BatchLoader(dataset: splits.val, sampler: .evaluation(count: splits.val.count), batchSize: 4,
                                  augment: false, seed: 1, threads: threads, badImages: log)
            let vb = try TestData.epoch(val, 0)
            XCTAssertEqual(vb.flatMap { $0.0 }, [0, 1, 2, 4, 5, 6])        // index 3 is the text file
            XCTAssertEqual(vb.map { $0.2.count }, [3 * per, 3 * per])
            XCTAssertEqual(log.count, 2)
            XCTAssertTrue(sink.lines[1].contains("zz_text.png") && sink.lines[1].contains("not a JPEG or PNG"), "\(sink.lines)")
        }
    }

    func testFailStopsWithTheFileNamed() throws {
        for threads in [0, 1] {
            let splits = try open(.fail)
            let train = BatchLoader(dataset: splits.train, sampler: DistributedSampler(count: 7, shuffle: false, seed: 1),
                                    batchSize: 2, augment: true, seed: 1, threads: threads, badImagePolicy: .fail)
            var seen = 0
            XCTAssertThrowsError(try train.forEachBatch(epoch: 0) { _, _ in seen += 1 }) { e in
                XCTAssertTrue(e is DataError && "\(e)".contains(truncated) && "\(e)".contains("--bad-image"), "\(e)")
            }
            XCTAssertEqual(seen, 1)                                       // batch 0 ran, batch 1 holds index 3
        }
    }

    func testOnlyTheFirstFewPathsAreLogged() {
        let sink = LineSink()
        let log = sink.log(limit: 2)
        for i in 0..<5 { log.record(BadImage("/x/\(i).jpg", "corrupt")) }
        XCTAssertEqual(log.count, 5)
        XCTAssertEqual(log.loggedPaths, ["/x/0.jpg", "/x/1.jpg"])
        XCTAssertEqual(sink.lines.count, 2)
        XCTAssertTrue(sink.lines[1].contains("not logged"))
    }
}
