import DataPipeline
import Foundation
import Kernels
import Layers
import Mixing

/// `rmtrain train --trace DIR`: everything one rank's training steps saw and computed, so that an
/// independent implementation (`launch/checks/rm_reference.py`, plain torch + torchvision) can replay the
/// run from the raw batches and the random draws alone and compare every intermediate.
///
/// Layout of DIR (rank 0; with `--trace-all-ranks`, `DIR/rank<k>/` for every rank k):
/// * `meta.json` — `format` ("rmtrain-trace 1"), `model`, `num_classes`, `image_shape` [H, W, C], `rank`,
///   `world_size`, `steps_per_epoch`, `settings` (what config.yaml records), `parameters` (the
///   optimizer's parameters in order, with `is_norm_or_bias`), `buffers`, `bf16_kernels` (true when
///   `--precision bf16-mixed` multiplied in bfloat16 on this machine); `steps` once the run ends.
/// * `weights-initial.safetensors`, `weights-final.safetensors` — every parameter (the RecursiveMix head
///   `fc_roi.*` included) and BN buffer before the first traced step and after the last one (after the
///   epoch-end BN averaging), in rmtrain's layout: conv weights OHWI (metadata `layout: OHWI`);
///   `weights-NNNNNN.safetensors` the same right after step N's update (for a step-by-step replay).
/// * `step-NNNNNN.safetensors`, N the 1-based global step, with F32 tensors
///   `images` [B, H, W, C] (as loaded: augmented and normalised, before mixing), `labels` [B] and
///   `indices` [B] (class ids and data-set indices, as floats), `mixed` [B, H, W, C] (the batch the
///   model saw), `targets` [B, K] (soft targets), `logits` [B, K] (main head), and metadata strings:
///   `step`, `epoch` (1-based), `batch` (0-based within the epoch), `lr`, `loss` (total), `ce` (main head),
///   `consistency` (unweighted RecursiveMix term, 0 when not mixed), `lam` (weight of the current images),
///   `mix_kind` (none, rm, mixup, cutmix), `box` (`x1,y1,x2,y2`: the sampled RecursiveMix box, which is
///   also the RoI, or the CutMix box; empty when there is none), `paste_box` (where RecursiveMix pasted),
///   `applied` (whether the optimizer step was applied).
/// Scalars are written with Swift's shortest round-trip decimal form, so they read back bit-exactly.
final class StepTracer: StepObserver {
    let directory: String
    /// What `weights-*.safetensors` hold: the optimizer's parameters and the BN buffers, in order.
    private let parameters: [Parameter], buffers: [Buffer]
    private(set) var steps = 0

    /// Creates DIR and writes `meta.json`. Throws naming the folder when it cannot be written.
    init(directory: String, meta: [String: Any], parameters: [Parameter], buffers: [Buffer]) throws {
        (self.directory, self.parameters, self.buffers) = (directory, parameters, buffers)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var m = meta
            m["format"] = "rmtrain-trace 1"
            try JSONSerialization.data(withJSONObject: m, options: [.sortedKeys, .prettyPrinted])
                .write(to: URL(fileURLWithPath: path("meta.json")))
        } catch { throw TrainingError("--trace \(directory): cannot write (\(error.localizedDescription))") }
    }

    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    var needsUnmixed: Bool { true }

    /// Writes `step-NNNNNN.safetensors` (the batch as loaded and what the step computed from it, with its
    /// number, epoch, learning rate and fate) and the weights after it.
    func observe(_ o: StepResult, of batch: Batch, at place: StepPlace) throws {
        let raw = o.unmixed ?? o.mixed
        let tensors = [SafeTensors.Entry(name: "images", shape: raw.shape, values: raw.array),
                       SafeTensors.Entry(name: "labels", shape: [batch.labels.count], values: batch.labels.map(Float.init)),
                       SafeTensors.Entry(name: "indices", shape: [batch.indices.count], values: batch.indices.map(Float.init)),
                       SafeTensors.Entry(name: "mixed", shape: o.mixed.shape, values: o.mixed.array),
                       SafeTensors.Entry(name: "targets", shape: o.targets.shape, values: o.targets.array),
                       SafeTensors.Entry(name: "logits", shape: o.logits.shape, values: o.logits.array)]
        func box(_ b: Box?) -> String { b.map { "\($0.x1),\($0.y1),\($0.x2),\($0.y2)" } ?? "" }
        let meta = ["lam": "\(o.record.lam)", "mix_kind": o.record.kind, "ce": "\(o.crossEntropy)",
                    "consistency": "\(o.consistency)", "loss": "\(o.stats.loss)", "box": box(o.record.box),
                    "paste_box": box(o.record.pasteBox), "step": "\(place.step)", "epoch": "\(place.epoch + 1)",
                    "batch": "\(place.batch)", "lr": "\(place.lr)", "applied": "\(place.applied)"]
        try write(tensors, to: String(format: "step-%06d.safetensors", place.step), metadata: meta)
        try writeWeights(String(format: "weights-%06d.safetensors", place.step))
        steps += 1
    }

    /// Parameters and buffers, as `weights-initial` / `weights-final`.
    func writeWeights(_ name: String) throws {
        let entries = parameters.map { SafeTensors.Entry(name: $0.name, shape: $0.value.shape, values: $0.value.array) }
            + buffers.map { SafeTensors.Entry(name: $0.name, shape: $0.value.shape, values: $0.value.array) }
        try write(entries, to: name, metadata: ["layout": "OHWI"])
    }

    /// Adds the number of traced steps to meta.json.
    func finish() throws {
        let url = URL(fileURLWithPath: path("meta.json"))
        do {
            guard var m = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else { return }
            m["steps"] = steps
            try JSONSerialization.data(withJSONObject: m, options: [.sortedKeys, .prettyPrinted]).write(to: url)
        } catch { throw TrainingError("--trace \(directory): cannot update meta.json (\(error.localizedDescription))") }
    }

    private func write(_ entries: [SafeTensors.Entry], to name: String, metadata: [String: String]) throws {
        do { try SafeTensors.encode(entries, metadata: metadata).write(to: URL(fileURLWithPath: path(name))) }
        catch { throw TrainingError("--trace: cannot write \(path(name)) (\(error.localizedDescription))") }
    }
}
