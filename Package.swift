// swift-tools-version:6.0
// rmtrain: distributed RecursiveMix training on CPU.
// Module graph (dependencies point one way; each target below declares exactly what it imports, which
// launch/checks/package_edges.swift checks in launch/test.sh):
//   Kernels (COpenBLAS, CConv: oneDNN)
//   ├─ Layers ─┬─ Models, Optim, Mixing
//   ├─ DataPipeline (CZlib, CTurboJPEG, CPNG)  Imaging (CZlib)
//   ├─ Distributed (CMPI)                  Checkpoint (CZstd)     TensorBoard (SwiftProtobuf)
//   Training: Models, Optim, Mixing, DataPipeline, Distributed, Checkpoint, TensorBoard, Imaging, Layers, Kernels,
//             ArgumentParser (each train flag is declared once, as a property of a settings group)
//   rmtrain: Training and the modules it names (not Layers, not the C libraries)
import PackageDescription

// Release builds: no bounds checks in the kernels (they use raw pointers anyway), whole-module
// optimisation, and AVX2 on x86-64 so that the elementwise and reduction loops vectorise 8 wide
// (Swift's default x86-64 target is SSE2). Every x86-64 server CPU since 2013 has AVX2.
#if arch(x86_64)
let cpuFlags = ["-target-cpu", "haswell"]
#else
let cpuFlags: [String] = []
#endif
// `-O`, not `-Ounchecked`, in every module: `-Ounchecked` would drop each precondition and overflow check,
// and it does not pay here. Measured 2026-11-29 (ResNet-20 with RecursiveMix, batch 64, 1 thread, 20 steps,
// the two builds run at the same time on the two cores, swapped every round, 4 rounds): 87.3 s of CPU with
// `-Ounchecked` in the kernel modules, 86.4 s with `-O` everywhere. Hot loops run on raw pointers anyway.
let optimize: [SwiftSetting] = [.unsafeFlags(["-O", "-wmo"] + cpuFlags, .when(configuration: .release))]

let package = Package(
    name: "rmtrain",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "rmtrain", targets: ["rmtrain"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
    ],
    targets: [
        // C libraries from Debian, reached through module maps. Each shim.h includes the library's header
        // and, for MPI, returns the handles that are macros Swift cannot import.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),

        // oneDNN's convolutions behind a small C interface (Sources/CConv/include/cconv.h).
        .target(name: "CConv", cSettings: [.unsafeFlags(["-O2"])], linkerSettings: [.linkedLibrary("dnnl")]),
        .target(name: "Kernels", dependencies: ["COpenBLAS", "CConv"], swiftSettings: optimize),
        .target(name: "Layers", dependencies: ["Kernels"], swiftSettings: optimize),
        .target(name: "Models", dependencies: ["Layers", "Kernels"], swiftSettings: optimize),
        .target(name: "Optim", dependencies: ["Layers", "Kernels"], swiftSettings: optimize),
        .target(name: "Mixing", dependencies: ["Kernels", "Layers"], swiftSettings: optimize),
        .target(name: "Imaging", dependencies: ["Kernels", "CZlib"], swiftSettings: optimize),
        .target(name: "DataPipeline", dependencies: ["Kernels", "CZlib", "CTurboJPEG", "CPNG"], swiftSettings: optimize),
        .target(name: "Distributed", dependencies: ["Kernels", "CMPI"], swiftSettings: optimize),
        .target(name: "Checkpoint", dependencies: ["Kernels", "CZstd"], swiftSettings: optimize),
        // TensorBoard event files: records encoded with swift-protobuf (generated code committed).
        .target(name: "TensorBoard", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
                exclude: ["Proto/tensorboard_event.proto"], swiftSettings: optimize),
        .target(name: "Training", dependencies: ["Models", "Optim", "Mixing", "DataPipeline", "Layers", "Kernels",
                                                   "Distributed", "Checkpoint", "TensorBoard", "Imaging",
                                                   .product(name: "ArgumentParser", package: "swift-argument-parser")],
                swiftSettings: optimize),
        .executableTarget(name: "rmtrain", dependencies: [
            "Training", "Models", "Mixing", "Imaging", "DataPipeline", "Kernels", "Distributed", "Checkpoint",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Yams", package: "Yams"),
        ], swiftSettings: optimize),

        // Layers, blocks and networks: gradient checks, PyTorch golden files, shapes and parameter counts.
        .testTarget(name: "NetworkTests", dependencies: ["Kernels", "Layers", "Models"],
                    exclude: ["Golden"]),
        .testTarget(name: "DataPipelineTests", dependencies: ["DataPipeline", "Kernels"], exclude: ["Golden"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Models", "DataPipeline", "Optim", "Layers", "Kernels",
                                                          "Distributed", "Checkpoint", "TensorBoard"], exclude: ["Golden"]),
        .testTarget(name: "SystemLibraryTests", dependencies: ["CMPI", "CZstd", "CTurboJPEG", "CZlib", "COpenBLAS"]),
        .testTarget(name: "MixingTests", dependencies: ["Mixing", "Kernels", "Layers"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "Kernels", "CZlib"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed"]),
        .testTarget(name: "OptimTests", dependencies: ["Optim", "Layers"]),
        .testTarget(name: "TensorBoardTests", dependencies: ["TensorBoard"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "Kernels"]),
        .testTarget(name: "CommandTests", dependencies: ["rmtrain", "Training", "Models", "Kernels", "Checkpoint", "Distributed",
                                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                    exclude: ["Golden"]),
    ],
    swiftLanguageModes: [.v6]
)
