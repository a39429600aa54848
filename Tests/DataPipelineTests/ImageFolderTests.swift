import Foundation
import XCTest
import Kernels
@testable import DataPipeline

/// Image folders on the real imagenette-mini and CIFAR-10 folders, and on broken copies in temp folders.
final class ImageFolderTests: XCTestCase {
    func testImagenetteClassesAndCounts() throws {
        let root = try TestData.require(TestData.imagenette)
        let splits = try openData("imagefolder:" + root)
        let classes = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                       "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"]
        XCTAssertEqual(splits.train.classNames, classes)
        XCTAssertEqual(splits.val.classNames, classes)
        XCTAssertEqual(splits.train.count, 600)
        XCTAssertEqual(splits.val.count, 200)
        var train = [Int](repeating: 0, count: 10), val = [Int](repeating: 0, count: 10)
        for i in 0..<600 { train[splits.train.label(i)] += 1 }
        for i in 0..<200 { val[splits.val.label(i)] += 1 }
        XCTAssertEqual(train, [Int](repeating: 60, count: 10))
        XCTAssertEqual(val, [Int](repeating: 20, count: 10))
        // Class index = position of the folder in sorted order; files sorted within it.
        let ds = splits.train as! ImageDataset
        XCTAssertTrue(ds.path(0).hasSuffix("train/n01440764/ILSVRC2012_val_00048204.JPEG"), ds.path(0))
        XCTAssertTrue(ds.path(60).contains("/n02102040/"))
        // 224-px photos: the ImageNet pipeline at 224 with ImageNet normalisation.
        XCTAssertEqual(ds.transform.pipeline, .imageNet)
        XCTAssertEqual(ds.sampleShape.height, 224)
        XCTAssertEqual(ds.sampleShape.channels, 3)
    }

    func testCIFAR10FolderCountsAndPipeline() throws {
        let root = try TestData.require(TestData.cifar10)
        let splits = try openData("imagefolder:" + root)        // no val/: falls back to test/
        XCTAssertEqual(splits.train.count, 50000)
        XCTAssertEqual(splits.val.count, 10000)
        XCTAssertEqual(splits.train.classNames, CIFARBinary.cifar10Names)
        var counts = [Int](repeating: 0, count: 10)
        for i in 0..<splits.val.count { counts[splits.val.label(i)] += 1 }
        XCTAssertEqual(counts, [Int](repeating: 1000, count: 10))
        let ds = splits.train as! ImageDataset
        XCTAssertEqual(ds.transform.pipeline, .cifar)                // 32-px images: CIFAR pipeline
        XCTAssertEqual(ds.transform.normalization.mean, Normalization.cifar.mean)
        XCTAssertEqual(ds.sampleShape.height, 32)
        // Evaluation is the image itself, normalised: compare with the decode.
        let v = splits.val as! ImageDataset
        let rgb = try v.decodeRGB(123).pixels
        let got = TestData.levels(try TestData.sample(v, 123, augment: false), .cifar)
        for i in 0..<rgb.count { XCTAssertEqual(got[i], Float(rgb[i]), accuracy: 1e-3) }
    }

    func testMissingSplitsAreClearErrors() throws {
        let dir = try TestData.tempDir("missing")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try openData("imagefolder:\(dir)")) { e in
            XCTAssertTrue("\(e)".contains("\(dir)/train"), "\(e)")
        }
        try FileManager.default.createDirectory(atPath: "\(dir)/train/a", withIntermediateDirectories: true)
        XCTAssertThrowsError(try openData("imagefolder:\(dir)")) { e in
            XCTAssertTrue("\(e)".contains("\(dir)/val") && "\(e)".contains("--val-split"), "\(e)")
        }
        var options = DataOptions()
        options.valSplit = "holdout"
        XCTAssertThrowsError(try openData("imagefolder:\(dir)", options: options)) { e in
            XCTAssertTrue("\(e)".contains("\(dir)/holdout"), "\(e)")
        }
        XCTAssertThrowsError(try openData("imagefolder:/no/such/place")) { e in
            XCTAssertTrue("\(e)".contains("/no/such/place"), "\(e)")
        }
        XCTAssertThrowsError(try openData("imagefolder")) { e in XCTAssertTrue("\(e)".contains("imagefolder:PATH"), "\(e)") }
        // A format we do not read is named at open.
        try FileManager.default.createDirectory(atPath: "\(dir)/val/a", withIntermediateDirectories: true)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: "\(dir)/train/a/x.webp"))
        XCTAssertThrowsError(try openData("imagefolder:\(dir)")) { e in
            XCTAssertTrue("\(e)".contains("x.webp"), "\(e)")
        }
    }

    /// A zip unpacked on macOS, a checkout with .git, a class folder left empty: none of them is a class
    /// (else a 5-way classifier for 3 classes of images); one warning line per split says what was left out.
    func testHiddenAndEmptyFoldersAreNotClasses() throws {
        let dir = try TestData.smallFolder(try TestData.tempDir("hidden"), classes: 2, perClass: 2)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        let classes = try fm.contentsOfDirectory(atPath: "\(dir)/train").sorted()
        let image = try fm.contentsOfDirectory(atPath: "\(dir)/train/\(classes[0])").sorted()[0]
        for sub in ["__MACOSX/\(classes[0])", ".git/objects", "aa_empty", "zz_text_only", "\(classes[1])/.thumbnails"] {
            try fm.createDirectory(atPath: "\(dir)/train/\(sub)", withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: "\(dir)/train/\(classes[0])/\(image)", toPath: "\(dir)/train/__MACOSX/\(classes[0])/\(image)")
        try fm.copyItem(atPath: "\(dir)/train/\(classes[0])/\(image)", toPath: "\(dir)/train/.git/objects/\(image)")
        try fm.copyItem(atPath: "\(dir)/train/\(classes[0])/\(image)", toPath: "\(dir)/train/\(classes[1])/.thumbnails/\(image)")
        try Data("notes".utf8).write(to: URL(fileURLWithPath: "\(dir)/train/zz_text_only/README.txt"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(dir)/train/zz_text_only/.DS_Store"))
        try fm.createDirectory(atPath: "\(dir)/val/empty_in_val", withIntermediateDirectories: true)

        let train = try ImageFolder.list("\(dir)/train")
        XCTAssertEqual(train.classes, classes)
        XCTAssertEqual(train.paths.count, 4)
        XCTAssertEqual(train.labels, [0, 0, 1, 1])
        let note = try XCTUnwrap(train.skipped)
        XCTAssertFalse(note.contains("\n"))
        for want in ["2 hidden folder(s): .git, __MACOSX", "2 folder(s) with no .jpg, .jpeg or .png image (not classes): aa_empty, zz_text_only"] {
            XCTAssertTrue(note.contains(want), note)
        }
        let val = try ImageFolder.list("\(dir)/val", classes: train.classes)
        XCTAssertEqual(val.paths.count, 4)
        XCTAssertTrue(val.skipped?.contains("empty_in_val") == true, "\(val.skipped ?? "nil")")
        XCTAssertNil(try ImageFolder.list("\(TestData.require(TestData.imagenette))/val").skipped)
        XCTAssertEqual(try openData("imagefolder:\(dir)").train.numClasses, 2)
    }

    /// Links are followed once: a link back up the tree (a loop), into another class or to a folder already
    /// listed is not followed, so no image is listed twice or under another class's label.
    func testLinksAreFollowedOnceNeverInALoopOrIntoAnotherClass() throws {
        let dir = try TestData.smallFolder(try TestData.tempDir("links"), classes: 2, perClass: 3)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        let c = try fm.contentsOfDirectory(atPath: "\(dir)/train").sorted()
        let image = try fm.contentsOfDirectory(atPath: "\(dir)/train/\(c[0])").sorted()[0]
        // Outside the split: a folder of 2 images that class 0 reaches through two links.
        try fm.createDirectory(atPath: "\(dir)/extra", withIntermediateDirectories: true)
        for k in 0..<2 { try fm.copyItem(atPath: "\(dir)/train/\(c[0])/\(image)", toPath: "\(dir)/extra/e\(k).jpg") }
        let links = ["\(c[0])/more": "../../extra", "\(c[0])/more-again": "\(dir)/extra",
                     "\(c[1])/up": "..", "\(c[1])/self": ".", "\(c[1])/root": "../..", "\(c[1])/other": "../\(c[0])"]
        for (at, to) in links { try fm.createSymbolicLink(atPath: "\(dir)/train/\(at)", withDestinationPath: to) }

        let train = try ImageFolder.list("\(dir)/train")
        XCTAssertEqual(train.classes, c)
        XCTAssertEqual(train.paths.count, 8, "\(train.paths)")
        XCTAssertEqual(train.labels, [0, 0, 0, 0, 0, 1, 1, 1])
        XCTAssertEqual(train.paths.filter { $0.contains("/\(c[0])/more/") }.count, 2, "\(train.paths)")
        XCTAssertEqual(Set(train.paths).count, 8)
        let note = try XCTUnwrap(train.skipped)
        for want in ["5 link(s), not followed: ", "\(c[0])/more-again (", "\(c[1])/root (back up the tree", "already listed)", "\(c[1])/up (back up the tree",
                     "\(c[1])/self (back up the tree", "\(c[1])/other (into class \(c[0]))"] {
            XCTAssertTrue(note.contains(want), "\(want) not in: \(note)")
        }
        // A class folder that is itself a link is a class like any other, unless it leads back up the tree
        // (here to the data set's root, which holds the evaluation split too).
        for at in ["\(c[1])/root", "\(c[0])/more", "\(c[0])/more-again"] { try fm.removeItem(atPath: "\(dir)/train/\(at)") }
        try fm.createSymbolicLink(atPath: "\(dir)/train/zz_linked", withDestinationPath: "\(dir)/extra")
        try fm.createSymbolicLink(atPath: "\(dir)/train/zz_root", withDestinationPath: "..")
        let linked = try ImageFolder.list("\(dir)/train")
        XCTAssertEqual(linked.classes, c + ["zz_linked"])
        XCTAssertEqual(linked.labels.filter { $0 == 2 }.count, 2)
        XCTAssertTrue(linked.skipped?.contains("zz_root (back up the tree") == true, "\(linked.skipped ?? "nil")")
        XCTAssertFalse(linked.skipped?.contains("image (not classes): zz_root") == true)
    }

    /// "café" in NFC and in NFD (as a copy from macOS can leave it) are one name to Swift and two folders
    /// to the file system: refused within a split, naming both; across splits they are the same class.
    func testUnicodeNormalisationTwinsAreRefusedNamingBoth() throws {
        let dir = try TestData.smallFolder(try TestData.tempDir("nfd"), classes: 1, perClass: 1)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        let c0 = try fm.contentsOfDirectory(atPath: "\(dir)/train")[0]
        let image = try fm.contentsOfDirectory(atPath: "\(dir)/train/\(c0)")[0]
        let nfc = "caf\u{E9}", nfd = "cafe\u{301}"
        XCTAssertEqual(nfc, nfd)                                        // Swift's String equality
        try fm.moveItem(atPath: "\(dir)/train/\(c0)", toPath: "\(dir)/train/\(nfc)")
        try fm.moveItem(atPath: "\(dir)/val/\(c0)", toPath: "\(dir)/val/\(nfd)")
        // Across splits: the NFD evaluation folder is the NFC training class.
        let splits = try openData("imagefolder:\(dir)")
        XCTAssertEqual(splits.val.count, 1)
        XCTAssertEqual(splits.val.label(0), 0)
        // Within a split: refused, both named.
        try fm.createDirectory(atPath: "\(dir)/train/\(nfd)", withIntermediateDirectories: true)
        try fm.copyItem(atPath: "\(dir)/train/\(nfc)/\(image)", toPath: "\(dir)/train/\(nfd)/\(image)")
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: "\(dir)/train").count, 2, "the file system keeps both names")
        XCTAssertThrowsError(try openData("imagefolder:\(dir)")) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("NFC, 5 bytes") && m.contains("NFD, 6 bytes") && m.contains("Unicode normalisation")
                          && m.contains("\(dir)/train") && !m.contains("\n"), m)
        }
    }

    func testRandomResizedCropStaysInBounds() {
        for (w, h) in [(224, 224), (500, 375), (32, 32), (1000, 50), (50, 1000), (7, 9)] {
            for k in 0..<2000 {
                var rng = RandomStream(seed: 3, stream: UInt64(w), UInt64(k))
                let (i, j, ch, cw) = ImageTransform.randomResizedCrop(width: w, height: h, rng: &rng)
                XCTAssertTrue(i >= 0 && j >= 0 && ch > 0 && cw > 0 && i + ch <= h && j + cw <= w,
                              "\(w)×\(h): crop \(i),\(j) \(cw)×\(ch)")
            }
        }
        // A typical photo: crops cover 8–100 % of the area with aspect ratio in [3/4, 4/3] (up to rounding).
        var rng = RandomStream(seed: 5)
        for _ in 0..<2000 {
            let (_, _, ch, cw) = ImageTransform.randomResizedCrop(width: 500, height: 375, rng: &rng)
            let area = Double(cw * ch) / (500 * 375), ratio = Double(cw) / Double(ch)
            XCTAssertTrue(area >= 0.075 && area <= 1.0001, "area \(area)")
            XCTAssertTrue(ratio >= 0.74 && ratio <= 1.35, "ratio \(ratio)")
        }
    }

    /// Augmented samples are finite, in range, and a pure function of (seed, epoch, index).
    func testAugmentationIsDeterministicAndInRange() throws {
        let root = try TestData.require(TestData.imagenette)
        var options = DataOptions()
        options.imageSize = 64
        options.augPlus = true
        let ds = try openData("imagefolder:" + root, options: options).train
        for index in [0, 61, 599] {
            let a = try TestData.sample(ds, index, augment: true, seed: 9, epoch: 2)
            let b = try TestData.sample(ds, index, augment: true, seed: 9, epoch: 2)
            let c = try TestData.sample(ds, index, augment: true, seed: 9, epoch: 3)
            XCTAssertEqual(a, b)
            XCTAssertNotEqual(a, c)
            XCTAssertTrue(a.allSatisfy { $0.isFinite && abs($0) < 6 })
        }
        // The grey photo of imagenette-mini loads as three channels.
        let grey = (0..<ds.count).first { (ds as! ImageDataset).path($0).hasSuffix("n03445777_16143.JPEG") }!
        let g = TestData.levels(try TestData.sample(ds, grey, augment: false), .imageNet)
        for p in stride(from: 0, to: 64 * 64, by: 37) {
            XCTAssertEqual(g[3 * p], g[3 * p + 1], accuracy: 1e-2)
            XCTAssertEqual(g[3 * p], g[3 * p + 2], accuracy: 1e-2)
        }
    }

    /// Decoding at a reduced DCT size gives nearly the same evaluation crop as decoding in full.
    func testDCTScaledDecodeMatchesFullDecode() throws {
        let dir = try TestData.tempDir("dct")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A large JPEG: an imagenette photo resized to 896×672 and encoded by turbojpeg.
        let src = try openData("imagefolder:" + (try TestData.require(TestData.imagenette))).train as! ImageDataset
        let (rgb, w, h) = try src.decodeRGB(5)
        let ws = DecodeWorkspace()
        let (xt, yt) = ws.tables
        let (bw, bh) = (896, 672)
        xt.compute(lo: 0, hi: w, in0: 0, in1: Double(w), outSize: bw, first: 0, count: bw)
        yt.compute(lo: 0, hi: h, in0: 0, in1: Double(h), outSize: bh, first: 0, count: bh)
        var big = [Float](repeating: 0, count: bw * bh * 3)
        rgb.withUnsafeBufferPointer { p in
            big.withUnsafeMutableBufferPointer {
                Resampler.run(src: p.baseAddress!, srcStride: w * 3, x: xt, y: yt, dst: $0.baseAddress!, dstStride: bw * 3,
                              gain: SIMD3(repeating: 1), bias: SIMD3(repeating: 0), tmp: ws.tmp)
            }
        }
        let bytes = big.map { UInt8(max(0, min(255, $0.rounded()))) }
        let jpeg = try bytes.withUnsafeBufferPointer { try ws.jpeg.encode($0.baseAddress!, width: bw, height: bh, quality: 95) }
        for split in ["train", "val"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(split)/a", withIntermediateDirectories: true)
            try Data(jpeg).write(to: URL(fileURLWithPath: "\(dir)/\(split)/a/big.jpg"))
        }
        // Eval at 112: short side 128 of 672 → the 1/4 … 1/2 DCT scales apply.
        var scaled = DataOptions(), full = DataOptions()
        scaled.imageSize = 112; full.imageSize = 112; full.dctScaling = false
        let a = TestData.levels(try TestData.sample(try openData("imagefolder:" + dir, options: scaled).val, 0, augment: false), .imageNet)
        let b = TestData.levels(try TestData.sample(try openData("imagefolder:" + dir, options: full).val, 0, augment: false), .imageNet)
        var sum: Float = 0, worst: Float = 0
        for i in 0..<a.count { let e = abs(a[i] - b[i]); sum += e; worst = max(worst, e) }
        XCTAssertLessThan(sum / Float(a.count), 1.5, "mean difference of scaled vs full decode")
        XCTAssertLessThan(worst, 40)
        XCTAssertEqual(JPEGCodec.scaledSize(.init(width: 896, height: 672, cmyk: false), minWidth: 170, minHeight: 128).width, 224)
    }
}
