import Foundation
import TensorBoard

/// What a run writes to TensorBoard (rank 0, RUN_DIR/events.out.tfevents.*): the step loss (averaged over
/// every rank's images) and learning rate every `--tensorboard-every` steps as `train/loss` and `train/lr`,
/// and each epoch every number of its metrics.jsonl row as `epoch/<key>`, all at the global optimizer step.
/// A resumed run starts a new event file; TensorBoard reads every file of the folder.
final class TrainingBoard {
    private let writer: EventWriter

    init(directory: String) throws {
        do { writer = try EventWriter(directory: directory) }
        catch { throw TrainingError("TensorBoard: \(error) (--no-tensorboard turns the event file off)") }
    }

    var path: String { writer.path }

    func step(_ step: Int, loss: Double, lr: Double) throws {
        try writer.scalars([("train/loss", loss), ("train/lr", lr)], step: step)
    }

    /// Every numeric field of the epoch's metrics row but `epoch` and `step` (`step` is the x axis).
    func epoch(_ record: MetricsRecord) throws {
        let fields = Dictionary(record.fields, uniquingKeysWith: { a, _ in a })
        guard let step = fields["step"].flatMap({ Int($0) }) else { return }
        let values = record.fields.compactMap { key, value -> (tag: String, value: Double)? in
            guard key != "epoch", key != "step", let v = Double(value) else { return nil }
            return ("epoch/" + key, v)
        }
        try writer.scalars(values, step: step)
    }
}
