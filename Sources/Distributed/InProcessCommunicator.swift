import Kernels
import Foundation

/// Several ranks as threads of one process, for tests of code that uses a `Communicator` without mpirun.
/// The ranks take turns: a rank computes only while it holds the world's lock, which it gives up while it
/// waits in a collective. So the ranks never compute at the same time (layers share scratch memory), and
/// every collective is a point where another rank may run, as between real processes.
///
///     let results = InProcessWorld.run(size: 2) { comm in try train(comm) }
///
/// Reductions sum in rank order (deterministic; not necessarily MPI's order for more than two ranks).
/// `abort` stops the test process with the message.
public enum InProcessWorld {
    /// Runs `body` once per rank on its own thread and returns each rank's result, in rank order.
    public static func run<T>(size: Int, _ body: @escaping (Communicator) throws -> T) -> [Result<T, Error>] {
        let hub = Hub(size: size)
        let run = Run(body: body, size: size)
        let group = DispatchGroup()
        for r in 0..<size {
            group.enter()
            let t = Thread {
                hub.cond.lock()
                let comm = InProcessCommunicator(rank: r, hub: hub)
                let result = Result { try run.body(comm) }
                run.results[r] = result
                hub.finished += 1
                hub.cond.broadcast()
                hub.cond.unlock()
                group.leave()
            }
            t.stackSize = 8 << 20
            t.start()
        }
        group.wait()
        return hub.cond.withLock { run.results.map { $0! } }
    }

    /// The body and the results, shared with the rank threads (written under the hub's lock).
    private final class Run<T>: @unchecked Sendable {
        let body: (Communicator) throws -> T
        var results: [Result<T, Error>?]
        init(body: @escaping (Communicator) throws -> T, size: Int) {
            self.body = body
            results = Array(repeating: nil, count: size)
        }
    }

    /// What the ranks share: the turn lock and the values deposited for each collective.
    final class Hub: @unchecked Sendable {
        let size: Int
        let cond = NSCondition()
        var finished = 0
        private var slots: [Int: (values: [Any?], ops: [String?], readers: Int)] = [:]
        init(size: Int) { self.size = size }

        /// Deposits `value` as this rank's part of collective number `sequence` and waits (giving up the turn)
        /// until every rank has; returns all parts in rank order. Called with `cond` held.
        func exchange(rank: Int, sequence: Int, op: String, value: Any) throws -> [Any] {
            var slot = slots[sequence] ?? ([Any?](repeating: nil, count: size), [String?](repeating: nil, count: size), 0)
            slot.values[rank] = value
            slot.ops[rank] = op
            slots[sequence] = slot
            cond.broadcast()
            while slots[sequence]!.values.contains(where: { $0 == nil }) {
                if finished > 0 { throw CommunicatorError("[rank \(rank)] collective #\(sequence) '\(op)': another rank has finished (ranks disagree on the collectives)") }
                cond.wait()
            }
            let ops = Set(slots[sequence]!.ops.compactMap { $0 })
            guard ops.count == 1 else {
                throw CommunicatorError("[rank \(rank)] collective #\(sequence): ranks are in different collectives: \(ops.sorted())")
            }
            let all = slots[sequence]!.values.map { $0! }
            slots[sequence]!.readers += 1
            if slots[sequence]!.readers == size { slots[sequence] = nil }
            return all
        }
    }
}

/// One rank of an `InProcessWorld`.
public final class InProcessCommunicator: Communicator {
    public let rank: Int
    public var size: Int { hub.size }
    public var localRank: Int { rank }
    public var localSize: Int { hub.size }
    private let hub: InProcessWorld.Hub
    private var sequence = 0

    init(rank: Int, hub: InProcessWorld.Hub) { (self.rank, self.hub) = (rank, hub) }

    private func exchange<T>(_ op: String, _ value: T) throws -> [T] {
        sequence += 1
        return try hub.exchange(rank: rank, sequence: sequence, op: op, value: value).map { $0 as! T }
    }

    public func barrier(_ op: String) throws { _ = try exchange(op, 0) }

    public func broadcast(_ p: UnsafeMutablePointer<Float>, count: Int, root: Int, _ op: String) throws {
        let all = try exchange(op, Array(UnsafeBufferPointer(start: p, count: count)))
        if rank != root { all[root].withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: count) } }
    }

    public func broadcast(bytes: inout [UInt8], root: Int, _ op: String) throws {
        bytes = try exchange(op, bytes)[root]
    }

    public func allReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, _ op: String) throws {
        let all = try exchange(op, Array(UnsafeBufferPointer(start: p, count: count)))
        for i in 0..<count {
            var s: Float = 0
            for part in all { s += part[i] }
            p[i] = s
        }
    }

    public func allReduceSum(_ values: inout [Double], _ op: String) throws {
        let all = try exchange(op, values)
        values = (0..<values.count).map { i in all.reduce(0.0) { $0 + $1[i] } }
    }

    public func allReduceMax(_ values: inout [Int64], _ op: String) throws {
        let all = try exchange(op, values)
        values = (0..<values.count).map { i in all.map { $0[i] }.max()! }
    }

    /// Completes at once (the ranks take turns, so nothing overlaps anyway).
    public func startAllReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, _ op: String) throws -> PendingReduce {
        try allReduceSum(p, count: count, op)
        let r = PendingReduce(op: op)
        r.done = true
        return r
    }

    /// Sums rank 0's values with rank 1's, then rank 2's, … rounding each partial sum to bfloat16 (a chain:
    /// Open MPI's order differs, and so may its last bit).
    public func startAllReduceSumBF16(_ p: UnsafeMutablePointer<UInt16>, count: Int, _ op: String) throws -> PendingReduce {
        let all = try exchange(op, Array(UnsafeBufferPointer(start: p, count: count)))
        for i in 0..<count {
            var s = all[0][i]
            for part in all.dropFirst() { s = BFloat16.from(BFloat16.float(s) + BFloat16.float(part[i])) }
            p[i] = s
        }
        let r = PendingReduce(op: op)
        r.done = true
        return r
    }

    public func progress() {}
    public func wait(_ request: PendingReduce) throws {}

    public func gather(bytes: [UInt8], root: Int, _ op: String) throws -> [[UInt8]] {
        let all = try exchange(op, bytes)
        return rank == root ? all : []
    }

    public func abort(_ message: String, code: Int32) -> Never {
        fatalError("[rank \(rank)] rmtrain: error: \(message) (exit \(code))")
    }
}
