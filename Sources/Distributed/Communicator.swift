import Foundation
import Kernels

/// What the training loop needs from the other ranks. Every rank must issue the same collectives in
/// the same order; each call names its operation (`op`) so that a stalled one can be reported.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// Rank among the processes of this node, and how many there are (for BLAS threads and binding).
    var localRank: Int { get }
    var localSize: Int { get }

    func barrier(_ op: String) throws
    func broadcast(_ p: UnsafeMutablePointer<Float>, count: Int, root: Int, _ op: String) throws
    func broadcast(bytes: inout [UInt8], root: Int, _ op: String) throws
    func allReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, _ op: String) throws
    func allReduceSum(_ values: inout [Double], _ op: String) throws
    func allReduceMax(_ values: inout [Int64], _ op: String) throws
    /// Starts a non-blocking in-place sum; `wait` completes it. Requests complete in issue order.
    func startAllReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, _ op: String) throws -> PendingReduce
    /// The same on bfloat16 values (`BFloat16` bits; `--allreduce-dtype bf16`): every partial sum is taken in
    /// float32 and rounded back to bfloat16, as PyTorch DDP's bf16_compress_hook sums on the wire.
    func startAllReduceSumBF16(_ p: UnsafeMutablePointer<UInt16>, count: Int, _ op: String) throws -> PendingReduce
    /// Lets outstanding non-blocking operations progress (call between layers of backward).
    func progress()
    func wait(_ request: PendingReduce) throws
    /// Collects every rank's bytes at `root` (others get []).
    func gather(bytes: [UInt8], root: Int, _ op: String) throws -> [[UInt8]]
    /// Ends the whole job: every rank, with this message on stderr.
    func abort(_ message: String, code: Int32) -> Never
    /// The training step (1-based) whose collectives follow: what a stalled collective's report names.
    /// Communicators without a watchdog ignore it.
    func beginStep(_ step: Int)
}

/// A handle on a non-blocking all-reduce.
public final class PendingReduce {
    public let op: String
    public var handle: Int = -1
    /// The watchdog's number for this collective (see `CollectiveState.sequence`).
    public var sequence = 0
    public var done = false
    public init(op: String) { self.op = op }
}

public extension Communicator {
    var isRoot: Bool { rank == 0 }
    func beginStep(_ step: Int) {}

    /// Every rank's counters summed, field by field (one all-reduce of Doubles).
    func allReduceSum<S: NamedSums>(_ sums: S, _ op: String) throws -> S {
        try allReduceSum(sums, extra: [], op).0
    }

    /// Two sets of counters summed in one all-reduce (a tiny collective costs its latency, not its bytes).
    func allReduceSum<A: NamedSums, B: NamedSums>(_ a: A, _ b: B, _ op: String) throws -> (A, B) {
        let (ra, rest) = try allReduceSum(a, extra: b.values, op)
        var rb = b
        rb.values = rest
        return (ra, rb)
    }

    /// Counters and a list named elsewhere (e.g. the epoch metrics' counters, named by their metrics) summed
    /// in one all-reduce.
    func allReduceSum<S: NamedSums>(_ sums: S, extra: [Double], _ op: String) throws -> (S, [Double]) {
        var v = sums.values + extra
        try allReduceSum(&v, op)
        var s = sums
        s.values = Array(v.prefix(S.fields.count))
        return (s, Array(v.dropFirst(S.fields.count)))
    }
}

/// The world of one process, used when the program is not started by an MPI launcher.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var localRank: Int { 0 }
    public var localSize: Int { 1 }
    public func barrier(_ op: String) {}
    public func broadcast(_ p: UnsafeMutablePointer<Float>, count: Int, root: Int, _ op: String) {}
    public func broadcast(bytes: inout [UInt8], root: Int, _ op: String) {}
    public func allReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, _ op: String) {}
    public func allReduceSum(_ values: inout [Double], _ op: String) {}
    public func allReduceMax(_ values: inout [Int64], _ op: String) {}
    public func startAllReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, _ op: String) -> PendingReduce {
        let r = PendingReduce(op: op)
        r.done = true
        return r
    }
    public func startAllReduceSumBF16(_ p: UnsafeMutablePointer<UInt16>, count: Int, _ op: String) -> PendingReduce {
        let r = PendingReduce(op: op)
        r.done = true
        return r
    }
    public func progress() {}
    public func wait(_ request: PendingReduce) {}
    public func gather(bytes: [UInt8], root: Int, _ op: String) -> [[UInt8]] { [bytes] }
    public func abort(_ message: String, code: Int32) -> Never {
        Console.errorLine("rmtrain: error: \(message)")
        exit(code)
    }
}

/// Finds out whether an MPI launcher started this process (mpirun, srun, a PMIx server).
public enum Launcher {
    public static var isUnderMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"].contains { env[$0] != nil }
            || (env["SLURM_PROCID"] != nil && env["SLURM_STEP_ID"] != nil && env["SLURM_NTASKS"].flatMap(Int.init) ?? 1 > 1)
    }

    /// Local rank and ranks per node from the launcher's environment, when it says.
    static func localRankFromEnvironment() -> (rank: Int, size: Int)? {
        let env = ProcessInfo.processInfo.environment
        let pairs = [("OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"),
                     ("PMIX_LOCAL_RANK", "PMIX_LOCAL_SIZE"),
                     ("SLURM_LOCALID", "SLURM_NTASKS_PER_NODE")]
        for (r, s) in pairs {
            if let rank = env[r].flatMap(Int.init), let size = env[s].flatMap(Int.init), size > 0 { return (rank, size) }
        }
        return nil
    }
}

/// Threads per rank: OPENBLAS_NUM_THREADS when the user set it, else the node's cores divided by the
/// ranks on the node (at least 1), so N ranks never start N × cores threads.
public func threadsPerRank(localSize: Int, requested: Int? = nil) -> Int {
    if let requested { return requested }
    if let env = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"].flatMap(Int.init), env > 0 { return env }
    return max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, localSize))
}
