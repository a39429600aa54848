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
