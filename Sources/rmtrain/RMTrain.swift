import ArgumentParser
import Foundation
import DataPipeline
import Kernels
import Training

@main
struct RMTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rmtrain",
        abstract: "Train image classifiers with RecursiveMix on CPUs, one process or many (mpirun).",
        subcommands: [TrainCommand.self, BenchCommand.self, DiffCommand.self, VisualizeCommand.self, PlotCommand.self, EvalCommand.self, ExportCommand.self, PackCommand.self, BenchDataCommand.self, CheckCollectivesCommand.self],
        defaultSubcommand: nil)

    /// Re-runs this process (same arguments, same PID: mpirun and SLURM see nothing) with
    /// `OPENBLAS_CORETYPE` set when OpenBLAS fell back to pre-AVX2 kernels on a CPU it does not recognise
    /// (see `BLASCore`). Runs before any thread or signal handler exists. `RMTRAIN_BLAS_REEXEC=0` turns it off.
    private static func reexecWithBetterBLASKernels() {
        let env = ProcessInfo.processInfo.environment
        guard env["RMTRAIN_BLAS_REEXEC"] != "0", let core = BLASCore.betterCoreType(environment: env) else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv("RMTRAIN_BLAS_REEXEC", "0", 1)            // once, whatever happens
        let argv = CommandLine.unsafeArgv
        execv("/proc/self/exe", argv)
        // exec failed (no /proc): carry on with OpenBLAS's own choice.
    }

    /// Errors are one line on stderr with a non-zero exit code, never a stack trace or a usage dump.
    static func main() {
        reexecWithBetterBLASKernels()
        // First of all: a preemption signal that arrives while the run starts (indexing data, building the
        // model) must not kill it; the trainer acts on it before the first step.
        if CommandLine.arguments.dropFirst().first == "train" { Preemption.install() }
        if let v = ProcessInfo.processInfo.environment["RMTRAIN_CONV"], ConvBackend(rawValue: v) == nil {
            FileHandle.standardError.write(Data("rmtrain: error: RMTRAIN_CONV=\(v): expected onednn, onednn-direct or portable\n".utf8))
            Foundation.exit(64)
        }
        do {
            let arguments = try ConfigFile.expand(Array(CommandLine.arguments.dropFirst()))
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }      // --help, --version
            if error is ExitCode { Foundation.exit(code.rawValue) }    // a verdict already printed (diff)
            let message = (error as? ConfigFile.Failure)?.description ?? describe(error) ?? RMTrain.message(for: error)
            // ArgumentParser lists allowed values on extra lines; fold them into the one line.
            let line = message.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }.joined(separator: " ")
            Console.errorLine("rmtrain: error: \(line)")
            Foundation.exit(code == .success ? 1 : code.rawValue)
        }
    }
}

