import Checkpoint
import DataPipeline
import Foundation

/// What a trained model takes as input (`InputSpec`: image size, resize rule, normalisation, class names),
/// recorded in its checkpoints and exported weights, and how `eval`, `export` and `--init-weights` use it as
/// their default: a flag that overrides it is said in one line, a difference no flag asked for is refused
/// (evaluating at another size or normalisation than training silently changes every number).
public enum ModelInput {
    /// The input of a run that trains on `data`.
    public static func spec(of data: Dataset) -> InputSpec {
        let s = data.sampleShape
        return InputSpec(imageSize: s.height, channels: s.channels, resize: resizeRule(of: data),
                         mean: data.normalization.mean, std: data.normalization.std, classNames: data.classNames)
    }

    /// The `--image-size` to open `data` with: the flag, else the recorded size, else (files written before
    /// the input was recorded) the `image-size=N` line of the run's configuration when the run gave the flag;
    /// nil leaves the data's default, which is what such a run used too. Fashion-MNIST has one size only
    /// (`note` then says how it differs from the model's).
    public static func imageSize(flag: Int?, recorded: InputSpec?, configuration: [String] = [], data: String) -> Int? {
        if flag == nil && data.hasPrefix("fashion-mnist") { return nil }
        return flag ?? recorded?.imageSize ?? configuration.lazy.compactMap { line -> Int? in
            line.hasPrefix("image-size=") ? Int(line.dropFirst("image-size=".count)) : nil
        }.first
    }

    /// The note for `data` opened against `recorded` (nil: nothing to say). `flag` is the `--image-size` given;
    /// `source` names the checkpoint or file. With `refuseUnasked` (evaluation), throws when the data's transform
    /// differs from the recorded one without a flag asking for it; otherwise (fine-tuning) that is a note too.
    public static func note(data: Dataset, recorded: InputSpec?, flag: Int?, source: String,
                            refuseUnasked: Bool = true) throws -> String? {
        let used = spec(of: data)
        guard let recorded else {
            return "\(source) predates recorded input settings: image size \(used.imageSize) (its configuration's "
                + "--image-size, else the data's default), classes matched by position in the data's training folder"
        }
        let changes = differences(recorded, used)
        if changes.isEmpty { return nil }
        let said = changes.joined(separator: "; ")
        guard let flag else {
            if !refuseUnasked { return "\(source) was trained on another input: \(said)" }
            throw TrainingError("\(source): the data gives another input than the model was trained with: \(said) "
                                + "(--image-size evaluates at another size on purpose)")
        }
        return "--image-size \(flag) overrides \(source)'s input: \(said)"
    }

    /// "image size 32 (trained at 16)", and likewise for the resize rule and the normalisation, where they differ.
    static func differences(_ recorded: InputSpec, _ used: InputSpec) -> [String] {
        var out: [String] = []
        if used.channels != recorded.channels { out.append("\(used.channels) channels (trained with \(recorded.channels))") }
        if used.imageSize != recorded.imageSize { out.append("image size \(used.imageSize) (trained at \(recorded.imageSize))") }
        if used.resize != recorded.resize { out.append("resize rule \(used.resize) (trained with \(recorded.resize))") }
        if used.mean != recorded.mean || used.std != recorded.std {
            out.append("Normalize(mean \(used.mean), std \(used.std)) (trained with mean \(recorded.mean), std \(recorded.std))")
        }
        return out
    }
}

extension ModelInput {
    /// The spec as safetensors metadata (strings; lists as JSON): `image_size`, `channels`, `resize`, `mean`,
    /// `std`, `classes`, what `export` and final.safetensors carry for other tools and `--init-weights`.
    public static func metadata(_ spec: InputSpec) -> [String: String] {
        ["image_size": "\(spec.imageSize)", "channels": "\(spec.channels)", "resize": spec.resize,
         "mean": json(spec.mean), "std": json(spec.std), "classes": json(spec.classNames)]
    }

    /// The spec from such metadata; nil when any key is missing (torchvision's or timm's files, older exports).
    public static func spec(metadata m: [String: String]) -> InputSpec? {
        guard let size = m["image_size"].flatMap({ Int($0) }), let channels = m["channels"].flatMap({ Int($0) }),
              let resize = m["resize"], let mean: [Float] = decode(m["mean"]), let std: [Float] = decode(m["std"]),
              let classes: [String] = decode(m["classes"]) else { return nil }
        return InputSpec(imageSize: size, channels: channels, resize: resize, mean: mean, std: std, classNames: classes)
    }

    private static func json<T: Encodable>(_ value: T) -> String {
        String(decoding: (try? JSONEncoder().encode(value)) ?? Data("[]".utf8), as: UTF8.self)
    }

    private static func decode<T: Decodable>(_ text: String?) -> T? {
        text.flatMap { try? JSONDecoder().decode(T.self, from: Data($0.utf8)) }
    }
}
