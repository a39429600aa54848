import DataPipeline
import Imaging
import Kernels
import Mixing

/// Rows of consecutive mixed batches, each image with its paste box and the top 3 classes of its mixed
/// label: what `rmtrain visualize` writes as a PNG and what TensorBoard shows each epoch (`mixed_batches`),
/// so that the recursion (a box inside the previous batch's box) can be seen.
public struct MixedBatchPicture {
    public private(set) var canvas: Canvas
    private let images: Int, scale: Int, cellW: Int, cellH: Int
    private let sample: (height: Int, width: Int, channels: Int)
    private let classNames: [String]
    private let normalization: Normalization

    /// `images` per row (the first of each batch), `rows` steps; `scale` defaults to about 128 pixels a cell.
    public init(title: String, rows: Int, images: Int, sample: (height: Int, width: Int, channels: Int),
                classNames: [String], normalization: Normalization, scale: Int? = nil) {
        self.images = images
        self.sample = sample
        self.classNames = classNames
        self.normalization = normalization
        self.scale = scale ?? max(1, 128 / sample.width)
        cellW = max(sample.width * self.scale, 120) + 8
        cellH = sample.height * self.scale + 3 * 10 + 4 + 20
        canvas = Canvas(width: cellW * images + 8, height: cellH * rows + 30)
        canvas.drawText(title, x: 6, y: 8)
    }

    /// Row `row`: the mixed batch `x` [N, H, W, C] of step `step` (1-based, printed), its `targets` [N, K].
    public mutating func addRow(_ row: Int, step: Int, x: Tensor, record: MixRecord, targets: Tensor) {
        let k = targets.count / max(x.n, 1)
        let box = record.mixed ? record.pasteBox ?? record.box : nil
        let y0 = 30 + row * cellH
        canvas.drawText(String(format: "step %d  lam %.3f", step, record.lam), x: 6, y: y0 - 2, color: .init(90, 90, 90))
        for i in 0..<min(images, x.n) {
            let x0 = 6 + i * cellW, iy = y0 + 8
            canvas.drawImage(x, index: i, x: x0, y: iy, scale: scale, mean: normalization.mean, std: normalization.std)
            if let box { canvas.drawBox(x1: box.x1, y1: box.y1, x2: box.x2, y2: box.y2, imageX: x0, imageY: iy, scale: scale) }
            let top = (0..<k).map { (c: $0, w: targets[i * k + $0]) }.sorted { $0.w > $1.w }.prefix(3)
            for (j, e) in top.enumerated() where e.w > 0 {
                let name = (e.c < classNames.count ? classNames[e.c] : "\(e.c)").prefix(11)
                canvas.drawText(String(format: "%.2f %@", e.w, String(name)), x: x0, y: iy + sample.height * scale + 4 + j * 10)
            }
        }
    }
}
