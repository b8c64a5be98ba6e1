"""A 5-class pets classifier: five rows of the real MobileNetV2 ImageNet classifier.

Reads mobilenetv2-12-int8.onnx from the data folder ($TRITON_VISION_DATA, default ../shared beside
the checkout) and writes pets.onnx next to this script, where pets.toml expects it. Run it from
anywhere: python examples/pets/make_pets.py
"""

import os
from pathlib import Path

import onnx
from onnx import TensorProto, helper

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("TRITON_VISION_DATA", HERE.parents[2] / "shared"))

model = onnx.load(str(DATA / "models" / "mobilenetv2-12-int8.onnx"))
graph = model.graph
rows = [281, 282, 285, 207, 222]  # tabby, tiger cat, Egyptian cat, golden retriever, kuvasz
graph.initializer.append(helper.make_tensor("pets_rows", TensorProto.INT64, [5], rows))
graph.node.append(helper.make_node("Gather", ["output", "pets_rows"], ["pets"], axis=1))
graph.output.pop()
graph.output.append(helper.make_tensor_value_info("pets", TensorProto.FLOAT, ["batch_size", 5]))
onnx.save(model, str(HERE / "pets.onnx"))
print(f"wrote {HERE / 'pets.onnx'}")
