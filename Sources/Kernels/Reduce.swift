import Foundation

/// Per-channel sums over the rows of a [rows, C] matrix, in an order that does not depend on the
/// thread count: rows are cut into fixed blocks, each block summed in Float, the block partials
/// added in block order in Double. So a result is the same bit for bit with 1 or 2 threads.
public enum ChannelReduce {
    public static let blockRows = 256
    /// Partial sums, one buffer per calling thread: ranks run as threads of one process in the tests, and
    /// two ranks' BatchNorms must not share it. Never called inside a parallel task.
    private final class Scratch { var tensor: Tensor? }
    private static func threadScratch() -> Scratch {
        let key = "rmtrain.ChannelReduce.scratch", d = Thread.current.threadDictionary
        if let box = d[key] as? Scratch { return box }
        let box = Scratch()
        d[key] = box
        return box
    }

    /// Calls `body(rows, partial)` for each block of rows; `partial` points at `width` zeroed floats
    /// the block adds into. Returns the sums over all blocks, in Double.
    public static func sum(rows: Int, width: Int,
                           _ body: (Range<Int>, UnsafeMutablePointer<Float>) -> Void) -> [Double] {
        var total = [Double](repeating: 0, count: width)
        sum(rows: rows, width: width, into: &total, body)
        return total
    }

    /// As `sum`, into `total` (`width` values, overwritten): a caller that keeps `total` allocates nothing.
    public static func sum(rows: Int, width: Int, into total: inout [Double],
                           _ body: (Range<Int>, UnsafeMutablePointer<Float>) -> Void) {
        precondition(total.count == width, "ChannelReduce.sum: \(total.count) results for width \(width)")
        let (partials, blocks) = blockPartials(rows: rows, width: width, body)
        total.withUnsafeMutableBufferPointer { t in
            t.update(repeating: 0)
            for b in 0..<blocks {
                let p = partials + b * width
                for j in 0..<width { t[j] += Double(p[j]) }
            }
        }
    }

    /// Calls `body(rows, partial)` for each block of `blockRows` rows (in parallel); returns the blocks'
    /// partials, `width` floats each in block order (valid until this thread's next call), for a caller that
    /// combines them other than by adding (BatchNorm's variance, Chan et al.'s pairwise update).
    public static func blockPartials(rows: Int, width: Int,
                                     _ body: (Range<Int>, UnsafeMutablePointer<Float>) -> Void)
        -> (partials: UnsafePointer<Float>, blocks: Int) {
        let blocks = max(1, (rows + blockRows - 1) / blockRows)
        // Reused across calls: a fresh allocation of this size (often > 128 KB) is a fresh mmap,
        // page faults and kernel zeroing on every batch-norm pass.
        let box = threadScratch()
        let partials = ensure(&box.tensor, [blocks * width]).data
        partials.update(repeating: 0, count: blocks * width)
        Parallel.ranges(blocks, minPerTask: 1) { blockRange in
            for b in blockRange {
                let lo = b * blockRows, hi = min(rows, lo + blockRows)
                body(lo..<hi, partials + b * width)
            }
        }
        return (UnsafePointer(partials), blocks)
    }
}
