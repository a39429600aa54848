import DataPipeline
import Foundation
import Imaging
import Kernels
import Mixing
import TensorBoard

/// What a run writes to TensorBoard (rank 0, RUN_DIR/events.out.tfevents.*): the step loss (averaged over
/// every rank's images) and learning rate every `--tensorboard-every` steps as `train/loss` and `train/lr`,
/// and each epoch every number of its metrics.jsonl row as `epoch/<key>`, all at the global optimizer step.
/// With a mixing method, each epoch's first `pictureRows` steps are drawn as `MixedBatchPicture` draws
/// them for `rmtrain visualize` (the first 8 images of each) and written as the image `mixed_batches` at
/// the step of the last row. A resumed run starts a new event file; TensorBoard reads every file of the folder.
final class TrainingBoard: StepObserver {
    /// What the mixed-batch picture draws from: the training data's shape, class names and normalisation,
    /// and the mixing method's name.
    struct PictureSource {
        let data: any Dataset
        let method: String
    }

    private let writer: EventWriter
    static let pictureRows = 3, pictureImages = 8
    private let source: PictureSource?
    private var picture: MixedBatchPicture?

    /// `picture` nil: no mixed-batch picture (a run without mixing).
    init(directory: String, picture: PictureSource?) throws {
        do { writer = try EventWriter(directory: directory) }
        catch { throw TrainingError("TensorBoard: \(error) (--no-tensorboard turns the event file off)") }
        source = picture
    }

    var needsUnmixed: Bool { false }

    /// Adds the step's first images as a row of the epoch's picture (its first `pictureRows` steps), and
    /// writes the picture after its last row.
    func observe(_ o: StepResult, of batch: Batch, at place: StepPlace) throws {
        let rows = min(Self.pictureRows, place.batchesPerEpoch), b = place.batch
        guard let source, b < rows else { return }
        if b == 0 || picture == nil {
            let data = source.data
            picture = MixedBatchPicture(title: "\(source.method), epoch \(place.epoch + 1): one row per step, top-3 classes of each mixed label",
                                        rows: rows, images: min(Self.pictureImages, o.mixed.n), sample: data.sampleShape,
                                        classNames: data.classNames, normalization: data.normalization)
        }
        picture?.addRow(b, step: place.step, x: o.mixed, record: o.record, targets: o.targets)
        if b == rows - 1, let canvas = picture?.canvas {
            try writer.image("mixed_batches", png: Data(try canvas.pngData()), width: canvas.width, height: canvas.height,
                             step: place.step)
            picture = nil
        }
    }

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
