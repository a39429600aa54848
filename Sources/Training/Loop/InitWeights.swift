import Checkpoint
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
/// - Files that name their classes (`classes` in the metadata: `rmtrain export`, final.safetensors) are matched
///   by name: the data's classes in another order or some of them take their own rows of the classifier; a
///   data class the file does not know leaves the classifier at its fresh initialisation (another label set).
/// - Any other tensor that is missing or of another shape is an error naming it and the file.
/// Returns one line per tensor skipped or re-initialised, for the run log.
public enum InitWeights {
    public static func load(_ path: String, into model: any Model, classNames: [String]? = nil) throws -> [String] {
        let source = "--init-weights \(path)"
        let tensors: [String: SafeTensors.Entry]
        let metadata: [String: String]
        do {
            tensors = try SafeTensors.read(path)
            metadata = try SafeTensors.metadata(path)
        } catch let e as SafeTensors.FormatError { throw formatError(path, e) }
        let ourLayout = metadata["layout"] == "OHWI"
        var notes: [String] = []
        var used = Set<String>()
        let classifier = model.classifier.weight.name.dropLast("weight".count)
        let rows = classifierRows(file: ModelInput.spec(metadata: metadata)?.classNames, data: classNames, notes: &notes)
        let targets = model.parameters.map { ($0.name, $0.value) } + model.buffers.map { ($0.name, $0.value) }
        for (name, t) in targets {
            guard let e = tensors[name] else { throw TrainingError("\(source): no tensor \(name) in the file") }
            used.insert(name)
            var shape = e.shape, values = e.values
            if shape.count == 4 && !ourLayout {
                (shape, values) = ([shape[0], shape[2], shape[3], shape[1]], ConvLayout.ohwi(fromOIHW: values, shape: shape))
            }
            if name.hasPrefix(classifier), let rows, let k = shape.first, k > 0 {
                guard !rows.isEmpty else { continue }
                guard rows.allSatisfy({ $0 < k }) else {
                    throw TrainingError("\(source): \(name) has \(k) rows but the file's metadata names more classes")
                }
                let width = values.count / k
                values = rows.flatMap { values[($0 * width)..<(($0 + 1) * width)] }
                shape[0] = rows.count
            }
            if shape != t.shape {
                if name.hasPrefix(classifier), shape.first != t.shape.first {
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

    /// The input the file's weights were trained on (its metadata), nil when it does not say (torchvision's, timm's).
    public static func input(_ path: String) throws -> InputSpec? {
        do { return ModelInput.spec(metadata: try SafeTensors.metadata(path)) }
        catch let e as SafeTensors.FormatError { throw formatError(path, e) }
    }

    /// The file is not safetensors; a checkpoint is the commonest such file here, so say what to do with one.
    static func formatError(_ path: String, _ e: SafeTensors.FormatError) -> TrainingError {
        let hint = path.hasSuffix(".rmck") ? " (a checkpoint: `rmtrain export --checkpoint \(path) --out FILE.safetensors` "
            + "writes its weights for --init-weights; --resume \(path) --resume-weights-only starts from them directly)" : ""
        return TrainingError("--init-weights \(path): \(e.description)\(hint)")
    }

    /// The file's classifier rows for the data's classes by name: nil to take the rows as they are (the same
    /// classes, or a file or data set that names none), empty to leave the classifier at its initialisation.
    static func classifierRows(file: [String]?, data: [String]?, notes: inout [String]) -> [Int]? {
        guard let file, let data, file != data else { return nil }
        let index = Dictionary(file.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let unknown = data.filter { index[$0] == nil }
        if !unknown.isEmpty {
            notes.append("classifier re-initialised: \(unknown.count) of the data's \(data.count) classes are not among the "
                         + "file's \(file.count) (first: \(unknown[0]))")
            return []
        }
        notes.append("classifier rows taken by class name: the data's \(data.count) classes from the file's \(file.count)")
        return data.map { index[$0]! }
    }
}
