#!/usr/bin/env bash
# Regenerates Sources/TensorBoard/Proto/tensorboard_event.pb.swift from tensorboard_event.proto with
# protoc (from pip's grpcio-tools: pip install grpcio-tools) and protoc-gen-swift (built from the
# swift-protobuf package this project depends on). The generated file is committed; CI never runs this.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product protoc-gen-swift >/dev/null
plugin="$(swift build -c release --show-bin-path)/protoc-gen-swift"
python3 -m grpc_tools.protoc --plugin=protoc-gen-swift="$plugin" --swift_out=Sources/TensorBoard/Proto \
  --swift_opt=Visibility=Public -I Sources/TensorBoard/Proto Sources/TensorBoard/Proto/tensorboard_event.proto
echo "wrote Sources/TensorBoard/Proto/tensorboard_event.pb.swift"
