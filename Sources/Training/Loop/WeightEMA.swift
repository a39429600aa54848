import Foundation
import Kernels
import Layers
import Models

/// `--model-ema DECAY`: an exponential moving average of the weights and BN statistics, as timm's
/// `ModelEmaV3` keeps it (`timm/utils/model_ema.py`): after optimizer step t (1-based),
///     e ← e + (1 − d_t)·(w − e)   (torch's lerp_), for every parameter and buffer,
/// with d_1 = 0 (the average starts as a copy) and, after that, d_t = DECAY, or with `--model-ema-warmup`
/// d_t = min(DECAY, 1 − (1 + (t − 1))^(−2/3)) (timm's warm-up, gamma 1, power 2/3).
/// The average lives in a second network of the same shape, evaluated beside the trained one.
/// Checkpoints keep it under `CheckpointNames.ema` (shared) and `CheckpointNames.rankEMABuffer` (each rank's BN).
final class WeightEMA {
    let decay: Double
    let warmup: Bool
    let model: any Model
    private let pairs: [(ema: Tensor, live: Tensor)]

    init(of live: any Model, inChannels: Int, decay: Double, warmup: Bool) throws {
        guard let copy = Networks.make(live.name, inChannels: inChannels, numClasses: live.numClasses) else {
            throw TrainingError("--model-ema: cannot build a second \(live.name)")
        }
        (self.decay, self.warmup, model) = (decay, warmup, copy)
        pairs = zip(copy.parameters.map(\.value) + copy.buffers.map(\.value),
                    live.parameters.map(\.value) + live.buffers.map(\.value)).map { ($0, $1) }
        restart()
    }

    /// The average becomes a copy of the live weights (a start, or a resume from a checkpoint without one).
    func restart() { for (e, w) in pairs { e.copy(from: w) } }

    /// timm's `get_decay(step)` for optimizer step `step` (1-based).
    static func decay(at step: Int, decay: Double, warmup: Bool) -> Double {
        let s = max(0, step - 1)
        if s <= 0 { return 0 }
        return warmup ? max(min(1 - pow(1 + Double(s), -2.0 / 3), decay), 0) : decay
    }

    /// After optimizer step `step` (1-based).
    func update(step: Int) {
        let weight = Float(1 - WeightEMA.decay(at: step, decay: decay, warmup: warmup))
        for (e, w) in pairs {
            let ep = e.data, wp = w.data
            Parallel.ranges(e.count, minPerTask: 1 << 15) { r in for i in r { ep[i] += weight * (wp[i] - ep[i]) } }
        }
    }
}
