import Kernels

public extension Model {
    /// Runs every convolution and the classifier in `precision` (`--precision`; `Precision` says what
    /// bf16-mixed keeps in float32). The weights stay float32: only the multiplications change.
    func use(_ precision: Precision) {
        for conv in convolutions { conv.precision = precision }
        classifier.precision = precision
    }
}
