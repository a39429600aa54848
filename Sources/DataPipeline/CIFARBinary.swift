import Foundation

/// `--data cifar10-bin:PATH` / `cifar100-bin:PATH`: the official binary versions of CIFAR.
/// CIFAR-10: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`, records of 1 label byte and
/// 3072 pixel bytes (1024 R, 1024 G, 1024 B, rows top to bottom); class names from `batches.meta.txt`.
/// CIFAR-100: `train.bin` and `test.bin`, records of a coarse and a fine label byte then the pixels; the
/// fine label is used; names from `fine_label_names.txt`. PATH may also be the folder that holds
/// `cifar-10-batches-bin/` or `cifar-100-binary/`, as the archives unpack.
public enum CIFARBinary {
    public enum Variant: Sendable { case cifar10, cifar100 }

    static let cifar10Names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    public static func open(_ path: String, variant: Variant, options: DataOptions) throws -> (train: ImageDataset, val: ImageDataset) {
        let kind = variant == .cifar10 ? "cifar10-bin" : "cifar100-bin"
        let sub = variant == .cifar10 ? "cifar-10-batches-bin" : "cifar-100-binary"
        var dir = path
        if !FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent(variant == .cifar10 ? "test_batch.bin" : "test.bin")),
           ImageFolder.isDirectory((dir as NSString).appendingPathComponent(sub)) {
            dir = (dir as NSString).appendingPathComponent(sub)
        }
        guard ImageFolder.isDirectory(dir) else { throw DataError("\(kind): data folder \(path) does not exist") }
        let trainFiles = variant == .cifar10 ? (1...5).map { "data_batch_\($0).bin" } : ["train.bin"]
        let testFiles = variant == .cifar10 ? ["test_batch.bin"] : ["test.bin"]
        let classes = try names(dir, variant: variant)
        let train = try read(dir, trainFiles, variant: variant, classes: classes.count)
        let test = try read(dir, testFiles, variant: variant, classes: classes.count)
        let size = options.imageSize ?? 32
        let t = ImageTransform(size: size, augPlus: options.augPlus, dctScaling: options.dctScaling)
        return (ImageDataset(name: "\(kind)/train", source: train, classNames: classes, transform: t),
                ImageDataset(name: "\(kind)/test", source: test, classNames: classes, transform: t))
    }

    static func names(_ dir: String, variant: Variant) throws -> [String] {
        let file = (dir as NSString).appendingPathComponent(variant == .cifar10 ? "batches.meta.txt" : "fine_label_names.txt")
        let count = variant == .cifar10 ? 10 : 100
        if let text = try? String(contentsOfFile: file, encoding: .utf8) {
            let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard lines.count == count else { throw DataError("\(file): expected \(count) class names, found \(lines.count)") }
            return lines
        }
        return variant == .cifar10 ? cifar10Names : (0..<count).map { String(format: "class_%02d", $0) }
    }

    static func read(_ dir: String, _ files: [String], variant: Variant, classes: Int) throws -> PixelSource {
        let labelBytes = variant == .cifar10 ? 1 : 2
        let record = labelBytes + 3072
        var pixels: [UInt8] = [], labels: [Int32] = [], starts: [(path: String, start: Int)] = []
        for name in files {
            let path = (dir as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw DataError("missing data file \(path)")
            }
            guard data.count > 0, data.count % record == 0 else {
                throw DataError("\(path): \(data.count) bytes is not a whole number of \(record)-byte records (truncated or not CIFAR-\(classes == 10 ? 10 : 100))")
            }
            let n = data.count / record
            starts.append((path, labels.count))
            pixels.reserveCapacity(pixels.count + n * 3072)
            try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                for r in 0..<n {
                    let rec = raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + r * record
                    let label = Int(rec[labelBytes - 1])          // CIFAR-100: the fine label (second byte)
                    guard label < classes else { throw DataError("\(path): record \(r) has label \(label), expected < \(classes)") }
                    labels.append(Int32(label))
                    // Planar CHW to packed HWC.
                    let px = rec + labelBytes
                    for i in 0..<1024 { pixels.append(px[i]); pixels.append(px[1024 + i]); pixels.append(px[2048 + i]) }
                }
            }
        }
        return PixelSource(pixels: pixels, width: 32, height: 32, labels: labels,
                           describe: { i in
                               let f = starts.last { $0.start <= i }!
                               return "\(f.path) record \(i - f.start)"
                           })
    }
}

/// Decoded images of one size held in memory (CIFAR binaries).
final class PixelSource: ImageSource, @unchecked Sendable {
    let pixels: UnsafeMutablePointer<UInt8>          // stable storage: `fetch` hands out pointers into it
    let width: Int, height: Int
    let labels: [Int32]
    private let describeFn: (Int) -> String
    init(pixels: [UInt8], width: Int, height: Int, labels: [Int32], describe: @escaping (Int) -> String) {
        self.pixels = .allocate(capacity: max(pixels.count, 1))
        self.pixels.initialize(from: pixels, count: pixels.count)
        self.width = width; self.height = height; self.labels = labels
        describeFn = describe
    }
    deinit { pixels.deallocate() }
    var count: Int { labels.count }
    func label(_ index: Int) -> Int { Int(labels[index]) }
    func describe(_ index: Int) -> String { describeFn(index) }
    func fetch(_ index: Int, _ ws: DecodeWorkspace) throws -> SourceImage {
        .pixels(pixels + index * width * height * 3, width: width, height: height)
    }
}
