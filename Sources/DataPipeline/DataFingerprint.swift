import Kernels

/// What identifies the data a run trains on, as `name=value` lines that ranks compare at start and a
/// checkpoint keeps for its resume: the image counts of both splits, the class names in order, and a hash
/// of each split's sample list (every sample's label and its file path relative to the split folder, for
/// image folders). A per-node copy that is incomplete, a stale mount or another class folder changes a line.
/// File sizes are not read: a stat per file costs minutes on millions of files over a network file system.
public enum DataFingerprint {
    public static func lines(train: Dataset, val: Dataset) -> [String] {
        var names = FNV1a()
        for c in train.classNames { names.add(c) }
        let shown = train.classNames.count <= 6 ? train.classNames.joined(separator: ",")
            : train.classNames.prefix(3).joined(separator: ",") + ",…," + train.classNames.suffix(2).joined(separator: ",")
        return ["data-classes=\(train.classNames.count) (\(shown); hash \(String(names.value, radix: 16)))",
                "data-train-images=\(train.count)", "data-train-list=\(String(listHash(train), radix: 16))",
                "data-val-images=\(val.count)", "data-val-list=\(String(listHash(val), radix: 16))"]
    }

    static func listHash(_ d: Dataset) -> UInt64 {
        var h = FNV1a()
        for i in 0..<d.count {
            h.add(d.label(i))
            h.add(d.sampleKey(i))
        }
        return h.value
    }
}
