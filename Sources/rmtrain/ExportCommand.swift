import ArgumentParser
import Checkpoint
import Foundation
import Kernels
import Training

/// `rmtrain export --checkpoint PATH --out model.safetensors`: the backbone and the main classifier in
/// torchvision's names and layouts (conv weights OIHW, `num_batches_tracked` as int64), without the
/// RecursiveMix consistency head — what torchvision, timm or a detection framework loads.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export a checkpoint's backbone and classifier as torchvision-style safetensors.")

    @Option(help: "Checkpoint file (.rmck).") var checkpoint: String
    @Option(help: "Output .safetensors file.") var out: String
    @Flag(help: "Export the moving average of the weights (a run trained with --model-ema) instead of the weights.") var ema = false

    func run() throws {
        let state = try CheckpointStore.read(checkpoint)
        var entries: [SafeTensors.Entry] = []
        var counters: [SafeTensors.Int64Entry] = []
        // The average's tensors carry the prefix `CheckpointNames.ema` in the checkpoint; the export drops it.
        let prefix = ema ? CheckpointNames.ema : ""
        let chosen = state.tensors.filter { $0.name.hasPrefix(CheckpointNames.ema) == ema }
            .map { SafeTensors.Entry(name: String($0.name.dropFirst(prefix.count)), shape: $0.shape, values: $0.values) }
        if ema && chosen.isEmpty { throw TrainingError("export --ema: \(checkpoint) holds no moving average (train with --model-ema)") }
        for e in chosen where !e.name.hasPrefix(CheckpointNames.momentum) && !e.name.hasPrefix(CheckpointNames.consistencyHead + ".") {
            if e.shape.count == 4 {
                entries.append(SafeTensors.Entry(name: e.name, shape: [e.shape[0], e.shape[3], e.shape[1], e.shape[2]],
                                                 values: ConvLayout.oihw(fromOHWI: e.values, shape: e.shape)))
            } else {
                entries.append(e)
            }
            if e.name.hasSuffix(".running_var") {
                let bn = String(e.name.dropLast(".running_var".count))
                counters.append(SafeTensors.Int64Entry(name: bn + ".num_batches_tracked", shape: [],
                                                       values: [Int64(state.header.step)]))
            }
        }
        // The input the weights were trained on goes along (`--init-weights` takes it as its default).
        var metadata = state.header.input.map(ModelInput.metadata) ?? [:]
        metadata.merge(["model": state.header.model, "source": checkpoint, "step": "\(state.header.step)", "format": "pt",
                        "layout": "torchvision"]) { $1 }
        let blob = SafeTensors.encode(entries, int64: counters, metadata: metadata)
        do { try blob.write(to: URL(fileURLWithPath: out), options: .atomic) }
        catch { throw TrainingError("cannot write \(out): \(error.localizedDescription)") }
        writeLine("rmtrain: exported \(entries.count + counters.count) tensors of \(state.header.model) to \(out)"
                  + (state.header.input.map { ", with its input (\($0.imageSize)×\($0.imageSize), \($0.classNames.count) classes)" }
                     ?? " (\(checkpoint) predates recorded input settings: no image size, normalisation or class names)"))
    }
}
