import Distributed
import Kernels
import Layers

/// Averages gradients across ranks through flat buckets of about `bucketBytes`, filled in the order
/// backward produces gradients. With `overlap`, a bucket's non-blocking all-reduce starts as soon as
/// its last gradient is ready, while backward continues on earlier layers; buckets always start in
/// index order, so every rank issues the same collectives in the same order.
final class GradientBuckets {
    private struct Bucket {
        var parameters: [Parameter]
        var buffer: Tensor
        var ready = 0
        var request: PendingReduce?
    }

    private let comm: Communicator
    private let overlap: Bool
    private var buckets: [Bucket] = []
    private var bucketOf: [ObjectIdentifier: Int] = [:]
    private var nextToStart = 0
    /// Seconds spent blocked in `finish` waiting for all-reduces (the part communication did not hide).
    private(set) var waitSeconds = 0.0

    init(groups: [[Parameter]], bucketBytes: Int, comm: Communicator, overlap: Bool) {
        self.comm = comm
        self.overlap = overlap
        var current: [Parameter] = []
        var floats = 0
        func close() {
            guard !current.isEmpty else { return }
            buckets.append(Bucket(parameters: current, buffer: Tensor(shape: [floats])))
            current = []
            floats = 0
        }
        for p in groups.flatMap({ $0 }) where bucketOf[ObjectIdentifier(p)] == nil {
            bucketOf[ObjectIdentifier(p)] = buckets.count
            current.append(p)
            floats += p.grad.count
            if floats * 4 >= bucketBytes { close() }
        }
        close()
    }

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
        while nextToStart < buckets.count && buckets[nextToStart].ready == buckets[nextToStart].parameters.count {
            try start(nextToStart)
            nextToStart += 1
        }
    }

    private func start(_ i: Int) throws {
        var off = 0
        let buf = buckets[i].buffer.data
        for p in buckets[i].parameters {
            (buf + off).update(from: p.grad.data, count: p.grad.count)
            off += p.grad.count
        }
        buckets[i].request = try comm.startAllReduceSum(buf, count: off, "all-reduce gradient bucket \(i)")
    }

    /// Starts what is left, waits for every bucket, and writes the averaged gradients back.
    func finish() throws {
        guard comm.size > 1 else { return }
        while nextToStart < buckets.count { try start(nextToStart); nextToStart += 1 }
        let scale = 1 / Float(comm.size)
        let t0 = DispatchTimeNow()
        for i in buckets.indices {
            if let r = buckets[i].request { try comm.wait(r) }
        }
        waitSeconds += DispatchTimeNow() - t0
        for b in buckets {
            var off = 0
            let buf = b.buffer.data
            for p in b.parameters {
                let g = p.grad.data
                for j in 0..<p.grad.count { g[j] = buf[off + j] * scale }
                off += p.grad.count
            }
        }
    }

    func resetWaitTime() { waitSeconds = 0 }
}

import Dispatch
@inline(__always) func DispatchTimeNow() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
