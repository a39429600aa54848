import Kernels
import Layers

/// One convolution layer run through forward and backward on fixed random data, for comparing kernels.
enum ConvRuns {
    typealias GC = GradientCheck

    struct Pass: Equatable { var y: [Float], dx: [Float], dw: [Float] }

    /// Forward, then backward with a fixed upstream gradient, for each (batch, weight seed) in `calls`.
    static func run(_ backend: ConvBackend, cin: Int, cout: Int, k: Int, s: Int, p: Int, size: Int,
                    calls: [(Int, UInt64)], precision: Precision = .fp32) -> [Pass] {
        ConvBackend.current = backend
        let conv = Conv2d("conv", cin, cout, kernel: k, stride: s, padding: p)
        conv.precision = precision
        return calls.map { n, seed in
            conv.weight.value.copy(from: GC.randomTensor(conv.weight.value.shape, seed: seed, stream: 2, scale: 0.2))
            let x = GC.randomTensor([n, size, size, cin], seed: seed, stream: 1)
            let r = GC.randomTensor(conv.outputShape(x.shape), seed: seed, stream: 4)
            conv.weight.grad.zero()
            let y = conv.forward(x, training: true).array
            let dx = conv.backward(r).array
            return Pass(y: y, dx: dx, dw: conv.weight.grad.array)
        }
    }

    static func relative(_ a: [Float], _ b: [Float]) -> Double {
        var d = 0.0, n = 0.0
        for (x, y) in zip(a, b) { d += Double(x - y) * Double(x - y); n += Double(y) * Double(y) }
        return (d / max(n, 1e-30)).squareRoot()
    }
}
