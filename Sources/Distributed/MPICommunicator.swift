import CMPI
import Foundation
import Kernels

/// The Communicator over OpenMPI. MPI is initialised with MPI_THREAD_MULTIPLE: the training thread runs
/// the collectives while the watchdog thread answers other ranks' questions on a duplicate communicator
/// (and asks them, and calls MPI_Abort, when a collective stalls). An MPI without it gets a watchdog that
/// names only its own collective.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public let localRank: Int
    public let localSize: Int
    private let comm: MPI_Comm
    private var requests: [MPI_Request?] = []
    public let watchdog: CollectiveWatchdog

    /// Initialises MPI. `timeout` is the watchdog's limit for one collective, in seconds.
    public init(timeout: Double) throws {
        var provided: Int32 = 0
        var argc: Int32 = 0
        let rc = MPI_Init_thread(&argc, nil, Int32(MPI_THREAD_MULTIPLE), &provided)
        guard rc == MPI_SUCCESS else { throw CommunicatorError("MPI_Init_thread failed with code \(rc)") }
        comm = rm_mpi_comm_world()
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(comm, &r)
        MPI_Comm_size(comm, &s)
        rank = Int(r)
        size = Int(s)
        if let local = Launcher.localRankFromEnvironment() {
            localRank = local.rank
            localSize = local.size
        } else {
            // Ask MPI which ranks share this node's memory.
            var local: MPI_Comm?
            MPI_Comm_split_type(comm, Int32(MPI_COMM_TYPE_SHARED), r, rm_mpi_info_null(), &local)
            var lr: Int32 = 0, ls: Int32 = 1
            MPI_Comm_rank(local, &lr)
            MPI_Comm_size(local, &ls)
            MPI_Comm_free(&local)
            localRank = Int(lr)
            localSize = Int(ls)
        }
        var channel: MPIStatusChannel?
        if provided >= Int32(MPI_THREAD_MULTIPLE), timeout > 0 {
            var diag: MPI_Comm?
            MPI_Comm_dup(comm, &diag)
            channel = MPIStatusChannel(comm: diag, rank: rank, size: size)
        }
        watchdog = CollectiveWatchdog(rank: rank, size: size, timeout: timeout, channel: channel, abort: { code in
            _ = MPI_Abort(rm_mpi_comm_world(), code)
        })
    }

    deinit {}

    /// Finalises MPI; call once at a normal exit. A last barrier first, so that a rank that ends early
    /// (it issued fewer collectives) waits under the watchdog, which then reports the disagreement.
    public func finalize() {
        try? barrier("end of run")
        watchdog.stop()
        MPI_Finalize()
    }

    private func check(_ rc: Int32, _ op: String) throws {
        if rc != MPI_SUCCESS { throw CommunicatorError("[rank \(rank)] MPI error \(rc) in \(op)") }
    }

    /// Numbers the watchdog's reports by the training step.
    public func beginStep(_ step: Int) { watchdog.step = step }

    /// One logical collective (however many MPI calls it takes), numbered and timed by the watchdog.
    private func guarded<T>(_ op: String, _ body: () throws -> T) rethrows -> T {
        watchdog.enter(op, sequence: watchdog.begin(op))
        defer { watchdog.leave() }
        return try body()
    }

    public func barrier(_ op: String) throws {
        try guarded(op) { try check(MPI_Barrier(comm), op) }
    }

    public func broadcast(_ p: UnsafeMutablePointer<Float>, count: Int, root: Int, _ op: String) throws {
        try guarded(op) {
            try forEachSlice(count) { off, n in try check(MPI_Bcast(p + off, Int32(n), rm_mpi_float(), Int32(root), comm), op) }
        }
    }

    public func broadcast(bytes: inout [UInt8], root: Int, _ op: String) throws {
        try guarded(op) {
            var n = Int64(bytes.count)
            try check(MPI_Bcast(&n, 1, rm_mpi_int64(), Int32(root), comm), op)
            if rank != root { bytes = [UInt8](repeating: 0, count: Int(n)) }
            let count = Int(n)
            try bytes.withUnsafeMutableBytes { raw in
                try forEachSlice(count) { off, len in
                    try check(MPI_Bcast(raw.baseAddress! + off, Int32(len), rm_mpi_byte(), Int32(root), comm), op)
                }
            }
        }
    }

    public func allReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, _ op: String) throws {
        try guarded(op) {
            try forEachSlice(count) { off, n in
                try check(MPI_Allreduce(rm_mpi_in_place(), p + off, Int32(n), rm_mpi_float(), rm_mpi_sum(), comm), op)
            }
        }
    }

    public func allReduceSum(_ values: inout [Double], _ op: String) throws {
        let n = values.count
        try values.withUnsafeMutableBufferPointer { b in
            try guarded(op) { try check(MPI_Allreduce(rm_mpi_in_place(), b.baseAddress, Int32(n), rm_mpi_double(), rm_mpi_sum(), comm), op) }
        }
    }

    public func allReduceMax(_ values: inout [Int64], _ op: String) throws {
        let n = values.count
        try values.withUnsafeMutableBufferPointer { b in
            try guarded(op) { try check(MPI_Allreduce(rm_mpi_in_place(), b.baseAddress, Int32(n), rm_mpi_int64(), rm_mpi_max(), comm), op) }
        }
    }

    public func startAllReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, _ op: String) throws -> PendingReduce {
        try start(UnsafeMutableRawPointer(p), count: count, type: rm_mpi_float(), sum: rm_mpi_sum(), op)
    }

    public func startAllReduceSumBF16(_ p: UnsafeMutablePointer<UInt16>, count: Int, _ op: String) throws -> PendingReduce {
        try start(UnsafeMutableRawPointer(p), count: count, type: rm_mpi_uint16(), sum: rm_mpi_bf16_sum(), op)
    }

    private func start(_ p: UnsafeMutableRawPointer, count: Int, type: MPI_Datatype, sum: MPI_Op, _ op: String) throws -> PendingReduce {
        precondition(count < Int(Int32.max), "bucket too large for one MPI call")
        var req: MPI_Request?
        try check(MPI_Iallreduce(rm_mpi_in_place(), p, Int32(count), type, sum, comm, &req), op)
        let r = PendingReduce(op: op)
        r.sequence = watchdog.begin(op)
        r.handle = requests.count
        requests.append(req)
        return r
    }

    public func progress() {
        // MPI_Test on the oldest outstanding request drives OpenMPI's progress engine.
        for i in requests.indices where requests[i] != nil {
            var flag: Int32 = 0
            MPI_Test(&requests[i], &flag, rm_mpi_status_ignore())
            if flag == 0 { return }
        }
    }

    public func wait(_ request: PendingReduce) throws {
        guard !request.done else { return }
        watchdog.enter(request.op, sequence: request.sequence)
        defer { watchdog.leave() }
        try check(MPI_Wait(&requests[request.handle], rm_mpi_status_ignore()), request.op)
        request.done = true
        if requests.allSatisfy({ $0 == nil || $0 == rm_mpi_request_null() }) { requests.removeAll(keepingCapacity: true) }
    }

    /// Any size: per-rank byte counts travel as Int64 and the bytes point-to-point in slices (MPI counts
    /// and displacements are Int32; a gather of more than 2 GiB in all would wrap them).
    public func gather(bytes: [UInt8], root: Int, _ op: String) throws -> [[UInt8]] {
        try guarded(op) {
            var mine = Int64(bytes.count)
            var counts = [Int64](repeating: 0, count: size)
            try check(MPI_Gather(&mine, 1, rm_mpi_int64(), &counts, 1, rm_mpi_int64(), Int32(root), comm), op)
            let tag: Int32 = 0x4761
            if rank != root {
                try bytes.withUnsafeBytes { raw in
                    try forEachSlice(bytes.count, limit: MPICommunicator.sliceBytes) { off, n in
                        try check(MPI_Send(raw.baseAddress.map { $0 + off }, Int32(n), rm_mpi_byte(), Int32(root), tag, comm), op)
                    }
                }
                return []
            }
            var all: [[UInt8]] = []
            for r in 0..<size {
                if r == rank { all.append(bytes); continue }
                var buffer = [UInt8](repeating: 0, count: Int(counts[r]))
                try buffer.withUnsafeMutableBytes { raw in
                    try forEachSlice(raw.count, limit: MPICommunicator.sliceBytes) { off, n in
                        try check(MPI_Recv(raw.baseAddress.map { $0 + off }, Int32(n), rm_mpi_byte(), Int32(r), tag, comm,
                                           rm_mpi_status_ignore()), op)
                    }
                }
                all.append(buffer)
            }
            return all
        }
    }

    public func abort(_ message: String, code: Int32) -> Never {
        Console.errorLine("[rank \(rank)] rmtrain: error: \(message)")
        MPI_Abort(comm, code)
        exit(code)
    }

    /// Largest message of one MPI call, in elements (bytes for byte buffers): 2³⁰, below Int32's limit.
    /// RMTRAIN_MPI_SLICE lowers it, so that tests exercise the slicing with small buffers.
    static let sliceBytes: Int = {
        if let v = ProcessInfo.processInfo.environment["RMTRAIN_MPI_SLICE"].flatMap(Int.init), v > 0 { return min(v, 1 << 30) }
        return 1 << 30
    }()

    /// MPI counts are Int32: large buffers go in slices (at least one call, of 0 elements for an empty buffer).
    private func forEachSlice(_ count: Int, limit: Int = MPICommunicator.sliceBytes, _ body: (Int, Int) throws -> Void) throws {
        let maxSlice = limit
        var off = 0
        repeat {
            let n = min(maxSlice, count - off)
            try body(off, n)
            off += n
        } while off < count
    }
}

public struct CommunicatorError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The watchdog's questions and answers, on a communicator of their own (a duplicate of the world's, so
/// they never match the training's messages). Used only by the watchdog thread (MPI_THREAD_MULTIPLE).
final class MPIStatusChannel: CollectiveStatusChannel {
    private var comm: MPI_Comm?
    private let rank: Int
    private let size: Int
    /// Buffers that MPI holds past one call live in memory of their own (Swift's `&` is valid only during a call).
    private let question = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
    private let asker = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
    private var pending: MPI_Request?
    private static let askTag: Int32 = 0x5741, stateTag: Int32 = 0x5742, stateBytes = 512

    init(comm: MPI_Comm?, rank: Int, size: Int) {
        (self.comm, self.rank, self.size) = (comm, rank, size)
        asker.pointee = Int64(rank)
        MPI_Irecv(question, 1, rm_mpi_int64(), rm_mpi_any_source(), Self.askTag, comm, &pending)
    }

    func serve(_ state: () -> CollectiveState) {
        while true {
            var done: Int32 = 0
            var status = MPI_Status()
            MPI_Test(&pending, &done, &status)
            guard done != 0 else { return }
            var answer = state().encoded.prefix(Self.stateBytes - 1) + [0]
            answer += [UInt8](repeating: 0, count: Self.stateBytes - answer.count)
            var bytes = Array(answer)
            MPI_Send(&bytes, Int32(Self.stateBytes), rm_mpi_byte(), status.MPI_SOURCE, Self.stateTag, comm)
            MPI_Irecv(question, 1, rm_mpi_int64(), rm_mpi_any_source(), Self.askTag, comm, &pending)
        }
    }

    func ask(deadline: Double, answering state: () -> CollectiveState) -> [Int: CollectiveState] {
        let others = (0..<size).filter { $0 != rank }
        var sends = [MPI_Request?](repeating: nil, count: others.count)
        var receives = [MPI_Request?](repeating: nil, count: others.count)
        // Never freed: the job aborts after asking, and a late answer may still land here.
        let buffers = UnsafeMutablePointer<UInt8>.allocate(capacity: others.count * Self.stateBytes)
        buffers.initialize(repeating: 0, count: others.count * Self.stateBytes)
        for (i, r) in others.enumerated() {
            MPI_Isend(asker, 1, rm_mpi_int64(), Int32(r), Self.askTag, comm, &sends[i])
            MPI_Irecv(buffers + i * Self.stateBytes, Int32(Self.stateBytes), rm_mpi_byte(), Int32(r), Self.stateTag, comm, &receives[i])
        }
        var states: [Int: CollectiveState] = [:]
        let end = Date().addingTimeInterval(deadline)
        while states.count < others.count && Date() < end {
            serve(state)
            for (i, r) in others.enumerated() where states[r] == nil {
                var done: Int32 = 0
                MPI_Test(&receives[i], &done, rm_mpi_status_ignore())
                if done != 0 {
                    states[r] = CollectiveState(decoding: Array(UnsafeBufferPointer(start: buffers + i * Self.stateBytes, count: Self.stateBytes)))
                }
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return states
    }

    func close() {
        MPI_Cancel(&pending)
        MPI_Wait(&pending, rm_mpi_status_ignore())
    }
}
