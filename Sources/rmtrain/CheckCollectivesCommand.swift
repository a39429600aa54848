import ArgumentParser
import Distributed
import Foundation
import Training

/// `rmtrain check-collectives --mib N` (hidden; tests): under mpirun, gathers N MiB of patterned bytes from
/// every rank to rank 0 and broadcasts N MiB from rank 0, checking every byte — the collectives a
/// checkpoint uses, at sizes past MPI's Int32 counts when N > 2048. `--extra-on-rank R` and
/// `--stall-on-rank R` instead make rank R issue one collective more than the others, or compute (sleep)
/// instead of joining one, so that tests see the watchdog name each cause.
struct CheckCollectivesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-collectives", abstract: "Check gather and broadcast of large messages (tests).",
        shouldDisplay: false)

    @Option(help: "Bytes per rank, in MiB.", check: .range(1...65_536)) var mib = 16
    @Option(help: "This rank issues one all-reduce more than the others.") var extraOnRank: Int?
    @Option(help: "This rank sleeps instead of joining the first all-reduce.") var stallOnRank: Int?
    @Option(help: "The watchdog's limit, in seconds.", check: .timeout)
    var collectiveTimeout = 600.0

    static func pattern(rank: Int, _ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: i &* 31 &+ rank &* 7 &+ i >> 20) }

    func run() throws {
        let world = try World.start(collectiveTimeout: collectiveTimeout, threads: 1)
        defer { world.finish() }
        try world.reportingErrors {
            let comm = world.comm
            if extraOnRank != nil || stallOnRank != nil {
                var x = [1.0]
                if comm.rank == stallOnRank { Thread.sleep(forTimeInterval: collectiveTimeout * 10) }
                try comm.allReduceSum(&x, "check sum")
                if comm.rank == extraOnRank { try comm.allReduceSum(&x, "check extra sum") }
                return
            }
            let n = mib << 20
            let mine = (0..<n).map { CheckCollectivesCommand.pattern(rank: comm.rank, $0) }
            let all = try comm.gather(bytes: mine, root: 0, "check gather")
            if comm.rank == 0 {
                for (r, bytes) in all.enumerated() {
                    guard bytes.count == n else { throw CommunicatorError("gather: rank \(r) sent \(bytes.count) bytes, expected \(n)") }
                    if let bad = (0..<n).first(where: { bytes[$0] != CheckCollectivesCommand.pattern(rank: r, $0) }) {
                        throw CommunicatorError("gather: rank \(r) byte \(bad) differs")
                    }
                }
            }
            var b = comm.rank == 0 ? mine : []
            try comm.broadcast(bytes: &b, root: 0, "check broadcast")
            if b.count != n { throw CommunicatorError("broadcast: rank \(comm.rank) got \(b.count) bytes, expected \(n)") }
            if let bad = (0..<n).first(where: { b[$0] != CheckCollectivesCommand.pattern(rank: 0, $0) }) {
                throw CommunicatorError("broadcast: rank \(comm.rank) byte \(bad) differs")
            }
            if comm.rank == 0 {
                writeLine("rmtrain: gather of \(mib) MiB from each of \(comm.size) ranks and broadcast of \(mib) MiB: every byte equal")
            }
        }
    }
}
