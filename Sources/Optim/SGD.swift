import Kernels
import Layers

/// SGD with momentum, as torch.optim.SGD (dampening 0):
///   d = g + wd·p;  v = μ·v + d;  p −= lr·(nesterov ? d + μ·v : v)
/// one fused pass per parameter. `decayNormAndBias: false` exempts BN γ/β and biases from weight decay
/// (the RecursiveMix code decays everything, so that is the default).
public final class SGD {
    public let parameters: [Parameter]
    public let momentum: Float
    public let weightDecay: Float
    public let nesterov: Bool
    public let decayNormAndBias: Bool
    public private(set) var velocity: [Tensor]

    public init(parameters: [Parameter], momentum: Float = 0.9, weightDecay: Float, nesterov: Bool = false,
                decayNormAndBias: Bool = true) {
        self.parameters = parameters
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        self.decayNormAndBias = decayNormAndBias
        velocity = parameters.map { Tensor(shape: $0.value.shape) }
    }

    public func step(lr: Float) {
        let mu = momentum, nesterov = self.nesterov
        for (p, v) in zip(parameters, velocity) {
            let wd: Float = (p.isNormOrBias && !decayNormAndBias) ? 0 : weightDecay
            let w = p.value.data, g = p.grad.data, m = v.data
            Parallel.ranges(p.value.count, minPerTask: 1 << 16) { r in
                for i in r {
                    let d = g[i] + wd * w[i]
                    let vi = mu * m[i] + d
                    m[i] = vi
                    w[i] -= lr * (nesterov ? d + mu * vi : vi)
                }
            }
        }
    }
}
