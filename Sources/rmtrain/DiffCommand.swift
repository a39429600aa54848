import ArgumentParser
import Foundation
import Kernels
import Training

/// `rmtrain diff A.safetensors B.safetensors`: per-tensor comparison of two weight or gradient files,
/// exact (bitwise) or within a relative tolerance. Exit code 1 when they differ beyond it.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff", abstract: "Compare the tensors of two safetensors files.")

    @Argument(help: "First file.") var a: String
    @Argument(help: "Second file.") var b: String
    @Option(help: "Largest allowed max|a−b| / max|b| per tensor; 0 means bitwise equal.", check: .nonNegative)
    var rtol = 0.0

    func run() throws {
        let ta = try SafeTensors.read(a), tb = try SafeTensors.read(b)
        guard Set(ta.keys) == Set(tb.keys) else {
            throw TrainingError("\(a) and \(b) hold different tensors: \(Set(ta.keys).symmetricDifference(tb.keys).sorted().prefix(5))")
        }
        var worst = 0.0, worstName = ""
        var unequal = 0
        for name in ta.keys.sorted() {
            let x = ta[name]!.values, y = tb[name]!.values
            guard x.count == y.count else { throw TrainingError("\(name): \(x.count) vs \(y.count) elements") }
            var maxDiff = 0.0, maxRef = 0.0
            var bitwise = true
            for i in 0..<x.count {
                if x[i].bitPattern != y[i].bitPattern { bitwise = false }
                maxDiff = max(maxDiff, abs(Double(x[i]) - Double(y[i])))
                maxRef = max(maxRef, abs(Double(y[i])))
            }
            let rel = maxDiff / max(maxRef, 1e-30)
            if !bitwise { unequal += 1 }
            if rel > worst || worstName.isEmpty { worst = rel; worstName = name }
        }
        writeLine("\(ta.count) tensors, \(unequal) not bitwise equal, worst relative difference \(worst) (\(worstName))")
        let ok = rtol == 0 ? unequal == 0 : worst <= rtol
        if !ok { throw ExitCode(1) }
    }
}
