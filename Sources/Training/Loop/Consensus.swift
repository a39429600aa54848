import Distributed
import Foundation
import Kernels
import Layers
import Models

/// The agreements ranks make outside the gradient all-reduce: same configuration, same starting
/// weights, averaged BN statistics, and no silent drift of the parameters.
enum Consensus {
    /// Stops the job at start when the ranks were given different configurations, naming the difference.
    static func checkSameConfiguration(_ fingerprint: [String], comm: Communicator) throws {
        try checkSame(fingerprint, what: "configuration", comm: comm)
    }

    /// Stops the job at start when the ranks see different data (counts, classes, file lists).
    static func checkSameData(_ fingerprint: [String], comm: Communicator) throws {
        try checkSame(fingerprint, what: "data", comm: comm)
    }

    /// Compares `name=value` lines across ranks; on a difference rank 0 stops the job with one line naming
    /// each rank and line that differ from its own.
    static func checkSame(_ fingerprint: [String], what: String, comm: Communicator) throws {
        guard comm.size > 1 else { return }
        let text = fingerprint.joined(separator: "\n")
        if try allAgree(FNV1a.hash(text.utf8), comm: comm, "compare \(what) fingerprints") { return }
        let all = try comm.gather(bytes: Array(text.utf8), root: 0, "gather \(what) fingerprints")
        if comm.rank == 0 {
            let mine = Set(fingerprint)
            var differences: [String] = []
            for (r, bytes) in all.enumerated() where r != 0 {
                let theirs = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
                for line in theirs where !mine.contains(line) {
                    let key = line.split(separator: "=").first.map(String.init) ?? line
                    let ours = fingerprint.first { $0.hasPrefix(key + "=") } ?? "\(key)=?"
                    differences.append("rank \(r) has \(line), rank 0 has \(ours)")
                }
            }
            comm.abort("\(what) differs across ranks: " + differences.joined(separator: "; "), code: 2)
        }
        // The other ranks wait here until rank 0's abort ends the job.
        try comm.barrier("\(what) mismatch: waiting for rank 0 to abort")
        throw TrainingError("\(what) differs across ranks")
    }

    /// Whether every rank holds the same `hash`: one all-reduce of (h, −h) under max, equal to this rank's pair
    /// only when no rank's is larger in either, i.e. all are equal (Int64.min, which has no negation, maps to max).
    static func allAgree(_ hash: UInt64, comm: Communicator, _ op: String) throws -> Bool {
        let h = Int64(bitPattern: hash), negated = h == Int64.min ? Int64.max : -h
        var v: [Int64] = [h, negated]
        try comm.allReduceMax(&v, op)
        return v[0] == h && v[1] == negated
    }

    /// Rank 0's parameters and BN buffers to every rank.
    static func broadcastModel(_ model: any Model, extra: [Parameter], comm: Communicator) throws {
        guard comm.size > 1 else { return }
        for p in model.parameters + extra {
            try comm.broadcast(p.value.data, count: p.value.count, root: 0, "broadcast \(p.name)")
        }
        for b in model.buffers {
            try comm.broadcast(b.value.data, count: b.value.count, root: 0, "broadcast \(b.name)")
        }
    }

    /// BN running statistics stay per rank in training; before evaluation and checkpoints they are averaged.
    static func averageBuffers(_ buffers: [Buffer], comm: Communicator) throws {
        guard comm.size > 1 else { return }
        let total = buffers.reduce(0) { $0 + $1.value.count }
        var flat = [Float](repeating: 0, count: total)
        var off = 0
        for b in buffers { for i in 0..<b.value.count { flat[off + i] = b.value[i] }; off += b.value.count }
        try flat.withUnsafeMutableBufferPointer { try comm.allReduceSum($0.baseAddress!, count: total, "average BN statistics") }
        off = 0
        let scale = 1 / Float(comm.size)
        for b in buffers { for i in 0..<b.value.count { b.value[i] = flat[off + i] * scale }; off += b.value.count }
    }

    /// A checksum of every parameter's bits, compared across ranks; divergence stops the job loudly.
    static func checkParametersAgree(_ parameters: [Parameter], step: Int, comm: Communicator) throws {
        guard comm.size > 1 else { return }
        var hash = FNV1a()
        for p in parameters { hash.add(UnsafeRawBufferPointer(start: p.value.data, count: p.value.count * 4)) }
        let h = hash.value
        if try !allAgree(h, comm: comm, "compare parameter checksums") {
            comm.abort("parameters diverged across ranks at step \(step) (checksum \(String(h, radix: 16)) on this rank)", code: 4)
        }
    }
}
