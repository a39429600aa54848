import Distributed
import Kernels
import Layers

/// Averages gradients across ranks through buckets of about `bucketBytes`: contiguous ranges of the flat
/// gradient buffer (`FlatParameters`, laid out in the order backward produces gradients), all-reduced in
/// place. With `overlap`, a bucket's non-blocking all-reduce starts as soon as its last gradient is ready,
/// while backward continues on earlier layers; buckets always start in index order, so every rank issues
/// the same collectives in the same order. With `bf16` (`--allreduce-dtype bf16`) a bucket is rounded to
/// bfloat16 into a buffer of its own when it starts, reduced there (half the bytes), and widened back at the end.
final class GradientBuckets {
    private struct Bucket {
        var parameters: Int
        var range: Range<Int>
        var ready = 0
        var request: PendingReduce?
    }

    private let comm: Communicator
    private let overlap: Bool
    private let flat: FlatParameters
    /// `--allreduce-dtype bf16`: the gradients as bfloat16 bits while they are reduced (nil for fp32).
    private let wire: UnsafeMutablePointer<UInt16>?
    private var buckets: [Bucket] = []
    private var bucketOf: [ObjectIdentifier: Int] = [:]
    private var nextToStart = 0
    /// Seconds spent blocked in `finish` waiting for all-reduces (the part communication did not hide).
    private(set) var waitSeconds = 0.0

    init(flat: FlatParameters, bucketBytes: Int, comm: Communicator, overlap: Bool, bf16: Bool = false) {
        self.comm = comm
        self.overlap = overlap
        self.flat = flat
        wire = bf16 && comm.size > 1 ? .allocate(capacity: flat.grads.count) : nil
        var start = 0, end = 0, count = 0
        func close() {
            guard count > 0 else { return }
            buckets.append(Bucket(parameters: count, range: start..<end))
            (start, count) = (end, 0)
        }
        for p in flat.parameters {
            bucketOf[ObjectIdentifier(p)] = buckets.count
            count += 1
            end += p.grad.count
            if (end - start) * 4 >= bucketBytes { close() }
        }
        close()
    }

    deinit { wire?.deallocate() }

    var count: Int { buckets.count }

    /// Call before backward.
    func reset() {
        for i in buckets.indices { buckets[i].ready = 0; buckets[i].request = nil }
        nextToStart = 0
    }

    /// Backward's callback: these parameters' gradients are final.
    func markReady(_ parameters: [Parameter]) throws {
        guard comm.size > 1 else { return }        // one process: the gradients are already the average
        for p in parameters {
            guard let b = bucketOf[ObjectIdentifier(p)] else { continue }
            buckets[b].ready += 1
        }
        if overlap { try startCompleted() }
        comm.progress()
    }

    private func startCompleted() throws {
        while nextToStart < buckets.count && buckets[nextToStart].ready == buckets[nextToStart].parameters {
            try start(nextToStart)
            nextToStart += 1
        }
    }

    private func start(_ i: Int) throws {
        let r = buckets[i].range, what = "all-reduce gradient bucket \(i)"
        if let wire {
            BFloat16.round(flat.grads.data + r.lowerBound, wire + r.lowerBound, count: r.count)
            buckets[i].request = try comm.startAllReduceSumBF16(wire + r.lowerBound, count: r.count, what)
        } else {
            buckets[i].request = try comm.startAllReduceSum(flat.grads.data + r.lowerBound, count: r.count, what)
        }
    }

    /// Starts what is left, waits for every bucket, and divides the sums by the number of ranks.
    func finish() throws {
        guard comm.size > 1 else { return }
        while nextToStart < buckets.count { try start(nextToStart); nextToStart += 1 }
        let scale = 1 / Float(comm.size)
        try timed(&waitSeconds) {
            for i in buckets.indices {
                if let r = buckets[i].request { try comm.wait(r) }
            }
        }
        let g = flat.grads.data
        if let wire { BFloat16.widen(wire, g, count: flat.grads.count, scale: scale); return }
        Parallel.ranges(flat.grads.count, minPerTask: 1 << 16) { r in for j in r { g[j] *= scale } }
    }

    func resetWaitTime() { waitSeconds = 0 }
}
