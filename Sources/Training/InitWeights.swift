import Foundation
import Kernels
import Layers
import Models

/// `--init-weights FILE.safetensors`: starts a run from pretrained weights under torchvision's names, the
/// mirror of `rmtrain export` (torchvision's, timm's or our own exported files load as they are).
///
/// - dtypes F32, F16 and BF16; convolution weights OIHW (torchvision's; converted to our OHWI) unless the file's
///   metadata says `layout: OHWI` (our own final.safetensors); `num_batches_tracked` counters are accepted.
/// - A classifier (`fc.*`) whose class count differs from the data's is left at its fresh initialisation, as
///   is RecursiveMix's consistency head (never in such files): fine-tuning on another label set.
/// - Any other tensor that is missing or of another shape is an error naming it and the file.
/// Returns one line per tensor skipped or re-initialised, for the run log.
public enum InitWeights {
    public static func load(_ path: String, into model: any Model) throws -> [String] {
        let source = "--init-weights \(path)"
        let tensors: [String: SafeTensors.Entry]
        let ourLayout: Bool
        do {
            tensors = try SafeTensors.read(path)
            ourLayout = (try SafeTensors.metadata(path)["layout"]) == "OHWI"
        } catch let e as SafeTensors.FormatError { throw TrainingError("\(source): \(e.description)") }
        var notes: [String] = []
        var used = Set<String>()
        let targets = model.parameters.map { ($0.name, $0.value) } + model.buffers.map { ($0.name, $0.value) }
        for (name, t) in targets {
            guard let e = tensors[name] else { throw TrainingError("\(source): no tensor \(name) in the file") }
            used.insert(name)
            var shape = e.shape, values = e.values
            if shape.count == 4 && !ourLayout {
                (shape, values) = ([shape[0], shape[2], shape[3], shape[1]], ConvLayout.ohwi(fromOIHW: values, shape: shape))
            }
            if shape != t.shape {
                if name.hasPrefix(model.classifier.weight.name.dropLast("weight".count)), shape.first != t.shape.first {
                    notes.append("\(name) re-initialised: the file has \(shape[0]) classes, the data \(t.shape[0])")
                    continue
                }
                throw TrainingError("\(source): \(name) has shape \(e.shape) in the file, \(t.shape) in --model \(model.name)"
                                    + (e.shape.count == 4 ? " (after OIHW → OHWI)" : ""))
            }
            values.withUnsafeBufferPointer { t.data.update(from: $0.baseAddress!, count: t.count) }
        }
        let unused = tensors.keys.filter { !used.contains($0) }.sorted()
        if !unused.isEmpty { notes.append("not used from the file: " + unused.joined(separator: ", ")) }
        return notes
    }
}
