import ArgumentParser
import Data

extension BadImagePolicy: ExpressibleByArgument {}

/// The data flags shared by `train` and `bench-data`. (`--data` itself stays with each command.)
struct DataOptions: ParsableArguments {
    @Option(parsing: .unconditional,
            help: "Output height and width (default: 32 for ≤32-px images, else 224). ≤ 32 uses the CIFAR pipeline (pad-4 crop, flip, CIFAR mean/std); larger sizes the ImageNet one (RandomResizedCrop, flip; eval resize to size/0.875 + centre crop; ImageNet mean/std).")
    var imageSize: Int?

    @Option(help: "Image folders: the evaluation folder under PATH (default: val, else test).")
    var valSplit: String?

    @Option(help: "A corrupt or truncated image: skip (count it, log the first paths, replace it in training, drop it in evaluation) or fail.")
    var badImage: BadImagePolicy = .skip

    @Option(parsing: .unconditional,
            help: "Background threads decoding and augmenting whole batches ahead of the step (0: load in the training thread).")
    var loaderThreads = 1

    @Flag(help: "Add ColorJitter(0.4, 0.4, 0.4) in random order and PCA lighting(0.1) (the RecursiveMix ImageNet recipe).")
    var augPlus = false

    @Flag(help: "Drop each epoch's last partial global batch (PyTorch's drop_last). Without it the sampler pads the epoch to a multiple of the ranks with repeated samples and the last batch is smaller, except that a last batch of a single sample per rank is dropped (BatchNorm statistics from one image).")
    var dropLast = false

    func validate() throws {
        if let imageSize, imageSize < 8 || imageSize > 4096 {
            throw ValidationError("--image-size must be between 8 and 4096, got \(imageSize)")
        }
        if loaderThreads < 0 || loaderThreads > 64 {
            throw ValidationError("--loader-threads must be between 0 and 64, got \(loaderThreads)")
        }
        if let valSplit, valSplit.isEmpty || valSplit.contains("/") {
            throw ValidationError("--val-split must be a folder name under the data folder, got '\(valSplit)'")
        }
    }

    /// The Data module's options.
    var options: DataPipelineOptions {
        var o = DataPipelineOptions()
        o.imageSize = imageSize
        o.valSplit = valSplit
        o.badImage = badImage
        o.loaderThreads = loaderThreads
        o.augPlus = augPlus
        o.dropLast = dropLast
        return o
    }
}
