import Checkpoint
import DataPipeline
import Distributed
import Foundation
import Kernels
import Training

/// The processes of a run: MPI when a launcher started us (mpirun, srun), else a single process;
/// threads per rank set from the ranks on this node. Errors on any rank end the whole job with
/// the rank named, instead of leaving the others waiting in a collective.
final class World {
    let comm: Communicator
    let threads: Int
    private let mpi: MPICommunicator?

    private init(comm: Communicator, mpi: MPICommunicator?, threads: Int) {
        self.comm = comm
        self.mpi = mpi
        self.threads = threads
    }

    static func start(collectiveTimeout: Double, threads requested: Int?) throws -> World {
        if Launcher.isUnderMPI {
            let mpi = try MPICommunicator(timeout: collectiveTimeout)
            Diagnostics.setRank(mpi.rank, of: mpi.size)
            let n = threadsPerRank(localSize: mpi.localSize, requested: requested)
            BLAS.setThreads(n)
            return World(comm: mpi, mpi: mpi, threads: n)
        }
        let n = threadsPerRank(localSize: 1, requested: requested)
        BLAS.setThreads(n)
        return World(comm: SingleProcess(), mpi: nil, threads: n)
    }

    /// Runs `body`; an error on a rank of a multi-rank job aborts the job with that rank's message.
    func reportingErrors(_ body: () throws -> Void) throws {
        do { try body() } catch {
            guard comm.size > 1 else { throw error }
            comm.abort(describe(error) ?? "\(error)", code: 1)
        }
    }

    private var finished = false
    func finish() {
        guard !finished else { return }
        finished = true
        mpi?.finalize()
    }
}

/// Our errors' own one-line descriptions; nil for errors of other kinds (ArgumentParser's).
func describe(_ error: Error) -> String? {
    switch error {
    case let e as DataError: return e.description
    case let e as TrainingError: return e.description
    case let e as SafeTensors.FormatError: return e.description
    case let e as CommunicatorError: return e.description
    case let e as CheckpointError: return e.description
    default: return nil
    }
}
