"""ONNX-level helpers: torch export, external weights, the float16 conversion, scope boundaries, and the tiny
stub graphs of the kinds the engine must refuse (they only need the right names, types and domains)."""
import os
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "sd15-unet"))
import export_random_unet as R  # noqa: E402  (merge_external_data: one streamed, page-aligned data file)

OPSET = 14


def export(model, args, path, input_names, output_names, dynamic_axes):
    """torch.onnx.export as optimum and diffusers' script call it (opset 14, constant folding). A model over
    2 GB comes out with one external file per tensor (torch's behaviour); the caller merges them."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(model, args, path, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True)


def uses_external_data(path):
    m = onnx.load(path, load_external_data=False)
    return any(t.data_location == TensorProto.EXTERNAL for t in m.graph.initializer)


def merge_external(path, data_name):
    """torch's per-tensor files -> one data file (streamed: the 3.4 GB UNet is never held twice)."""
    R.merge_external_data(path, data_name)


def save_with_external(model, path, data_name):
    """What onnx.save_model(save_as_external_data=True, all_tensors_to_one_file=True) writes (diffusers'
    script, optimum): tensors of 1024 bytes and more go to data_name at increasing offsets, smaller ones stay
    inline. onnx appends to an existing data file, so it is removed first."""
    data = os.path.join(os.path.dirname(path), data_name)
    if os.path.exists(data):
        os.remove(data)
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location=data_name,
                    size_threshold=1024, convert_attribute=False)


class ExternalSink:
    """Appends tensors to an external data file (page-aligned, as merge_external lays it out) and returns the
    TensorProto pointing at them: for graphs built in Python whose weights exceed protobuf's 2 GB."""

    def __init__(self, data_path):
        self.name = os.path.basename(data_path)
        self.f = open(data_path, "ab")

    def __call__(self, array, name):
        data = np.ascontiguousarray(array, np.float32)
        self.f.write(b"\0" * ((-self.f.tell()) % 4096))
        offset = self.f.tell()
        self.f.write(data.tobytes())
        t = onnx.TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(data.shape))
        for k, v in (("location", self.name), ("offset", str(offset)), ("length", str(data.nbytes))):
            e = t.external_data.add()
            e.key, e.value = k, v
        t.data_location = TensorProto.EXTERNAL
        return t

    def close(self):
        self.f.close()


def scope_boundary(model, scope):
    """Tensors produced by nodes of `scope` (a name prefix such as /text_model/encoder/layers.3/) and consumed
    outside it or returned by the graph: the module's outputs, the rule docs/onnx-diffusion.md describes."""
    inside = set()
    outside = set(o.name for o in model.graph.output)
    for n in model.graph.node:
        if n.name.startswith(scope):
            inside.update(n.output)
        else:
            outside.update(n.input)
    return sorted(inside & outside)


# ------------------------------------------------------------------------------------------ float16
# Inputs that the ONNX spec types as float32 whatever the data type (Resize's `scales`).
FP32_ONLY_INPUTS = {"Resize": {2}}
FP16_MAX = 65504.0


def _half(arr):
    # out-of-range values become +-65504 rather than inf (the float16 converters do the same; the text
    # encoder's -1e9 causal mask would otherwise turn into -inf)
    return np.clip(arr, -FP16_MAX, FP16_MAX).astype(np.float16)


def float_types(skeleton):
    """elem type of every tensor, by onnx shape inference. Pass a model loaded with load_external_data=False
    when it is big: inference serializes the model, and protobuf stops at 2 GB."""
    m = onnx.shape_inference.infer_shapes(skeleton)
    g = m.graph
    elem = {}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        elem[vi.name] = vi.type.tensor_type.elem_type
    for t in g.initializer:
        elem[t.name] = t.data_type
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    elem[n.output[0]] = a.t.data_type
    return elem


def to_fp16(model, keep_fp32_scopes=(), elem=None):
    """Float16 weights and float16 inputs/outputs, as a float16 torch export writes them: every float tensor
    becomes float16 except inside `keep_fp32_scopes` (node-name prefixes), where the fp32 computation stays and
    Casts are inserted at the boundary. For the UNet that scope is /time_proj/: diffusers computes the timestep
    sinusoids in float32 (`timesteps.float()`) and casts the embedding to the model's dtype after, which a
    float16 export keeps (sin of t * freq in float16 would be off by ~0.25 rad at t ~ 1000)."""
    if elem is None:
        elem = float_types(model)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    is_float = lambda name: elem.get(name) == TensorProto.FLOAT  # noqa: E731
    kept = lambda n: any(n.name.startswith(s) for s in keep_fp32_scopes)  # noqa: E731

    # which precision each consumer wants for each float input; constants and initializers follow their users
    wants = {}  # tensor -> set of wanted elem types
    for n in g.node:
        for i, x in enumerate(n.input):
            if x and is_float(x) and n.op_type != "Cast":
                fp32 = kept(n) or i in FP32_ONLY_INPUTS.get(n.op_type, ())
                wants.setdefault(x, set()).add(TensorProto.FLOAT if fp32 else TensorProto.FLOAT16)
    for o in g.output:
        if is_float(o.name):
            wants.setdefault(o.name, set()).add(TensorProto.FLOAT16)

    produced = {}  # float tensor -> elem type it has after conversion
    for vi in g.input:
        if is_float(vi.name):
            produced[vi.name] = TensorProto.FLOAT16
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    new_inits = []
    for t in g.initializer:
        if t.data_type != TensorProto.FLOAT:
            new_inits.append(t)
            continue
        w = wants.get(t.name, {TensorProto.FLOAT16})
        arr = numpy_helper.to_array(t)
        if TensorProto.FLOAT16 in w:
            h = numpy_helper.from_array(_half(arr), t.name)
            new_inits.append(h)
            produced[t.name] = TensorProto.FLOAT16
            if TensorProto.FLOAT in w:  # also wanted in fp32: a second, fp32 copy
                new_inits.append(numpy_helper.from_array(arr, t.name + "_fp32"))
        else:
            new_inits.append(t)
            produced[t.name] = TensorProto.FLOAT
    del g.initializer[:]
    g.initializer.extend(new_inits)

    nodes = []
    casts = {}  # (tensor, to) -> cast output name

    def cast_name(x, to):
        if (x, to) in casts:
            return casts[(x, to)]
        if x in inits and to == TensorProto.FLOAT and produced.get(x) == TensorProto.FLOAT16:
            casts[(x, to)] = x + "_fp32"  # the fp32 copy made above
            return casts[(x, to)]
        out = f"{x}_to_{'fp32' if to == TensorProto.FLOAT else 'fp16'}"
        nodes.append(helper.make_node("Cast", [x], [out], name=out + "/Cast", to=to))
        casts[(x, to)] = out
        return out

    for n in g.node:
        keep = kept(n)
        if n.op_type == "Constant" and not keep:
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    w = wants.get(n.output[0], {TensorProto.FLOAT16})
                    if TensorProto.FLOAT16 in w:
                        a.t.CopyFrom(numpy_helper.from_array(_half(numpy_helper.to_array(a.t)), a.t.name))
        for i, x in enumerate(n.input):
            if not x or not is_float(x) or n.op_type == "Cast":  # Cast takes any input type
                continue
            want = TensorProto.FLOAT if (keep or i in FP32_ONLY_INPUTS.get(n.op_type, ())) else TensorProto.FLOAT16
            have = produced.get(x, TensorProto.FLOAT16)
            if have != want:
                n.input[i] = cast_name(x, want)
        if not keep:
            for a in n.attribute:
                if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
                elif a.name == "dtype" and a.i == TensorProto.FLOAT:  # RandomNormalLike, EyeLike, ...
                    a.i = TensorProto.FLOAT16
                elif n.op_type == "ConstantOfShape" and a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(_half(numpy_helper.to_array(a.t)), a.t.name))
        for o in n.output:
            if is_float(o):
                const_fp32 = n.op_type == "Constant" and TensorProto.FLOAT16 not in wants.get(o, {TensorProto.FLOAT16})
                produced[o] = TensorProto.FLOAT if (keep or const_fp32) else TensorProto.FLOAT16
        nodes.append(n)
    # graph outputs must be float16
    for o in g.output:
        if is_float(o.name):
            o.type.tensor_type.elem_type = TensorProto.FLOAT16
            if produced.get(o.name) == TensorProto.FLOAT:
                raise ValueError(f"output {o.name} comes out of a kept-fp32 scope")
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    return model


# ------------------------------------------------------------------------------------------ stub graphs
def _vi(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, dims)


def stub_model(inputs, outputs, producer="pytorch", extra_opsets=(), nodes_before=(), inits=()):
    """A valid, runnable graph with the given inputs and outputs. inputs: (name, elem_type, dims) with str dims
    dynamic; outputs: (name, elem_type, dims) where a dim is an int (fixed) or ("input", axis[, factor], name)
    taken from an input's runtime shape. Each output is a ConstantOfShape of zeros: only names, types and
    shapes matter to the tests these stubs serve."""
    nodes = list(nodes_before)
    init = list(inits)
    for oname, oelem, odims in outputs:
        parts = []
        for k, d in enumerate(odims):
            if isinstance(d, int):
                c = f"{oname}_dim{k}"
                init.append(numpy_helper.from_array(np.array([d], dtype=np.int64), c))
                parts.append(c)
            else:
                src, axis = d[0], d[1]
                factor = d[2] if len(d) > 3 else 1
                shp, idx, dim = f"{oname}_shape{k}", f"{oname}_idx{k}", f"{oname}_d{k}"
                init.append(numpy_helper.from_array(np.array([axis], dtype=np.int64), idx))
                nodes.append(helper.make_node("Shape", [src], [shp], name=f"/{oname}/Shape_{k}"))
                nodes.append(helper.make_node("Gather", [shp, idx], [dim], name=f"/{oname}/Gather_{k}", axis=0))
                if factor != 1:
                    f = f"{oname}_f{k}"
                    init.append(numpy_helper.from_array(np.array([factor], dtype=np.int64), f))
                    nodes.append(helper.make_node("Mul", [dim, f], [dim + "_x"], name=f"/{oname}/Mul_{k}"))
                    dim = dim + "_x"
                parts.append(dim)
        shape = f"{oname}_shape"
        nodes.append(helper.make_node("Concat", parts, [shape], name=f"/{oname}/Concat", axis=0))
        zero = helper.make_tensor("value", oelem, [1], [False] if oelem == TensorProto.BOOL else [0])
        nodes.append(helper.make_node("ConstantOfShape", [shape], [oname], name=f"/{oname}/ConstantOfShape", value=zero))
    dims_out = [[d if isinstance(d, int) else d[-1] for d in od] for _, _, od in outputs]
    graph = helper.make_graph(nodes, "stub", [_vi(n, e, d) for n, e, d in inputs],
                              [_vi(n, e, d) for (n, e, _), d in zip(outputs, dims_out)], init)
    opsets = [helper.make_opsetid("", OPSET)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    m = helper.make_model(graph, opset_imports=opsets, producer_name=producer)
    m.ir_version = 7  # what torch 1.13 writes for opset 14
    return m


def safety_checker_model():
    """diffusers' script exports StableDiffusionSafetyChecker.forward_onnx: clip_input [B,3,224,224] (CLIP
    pixels) and images [B,H,W,3] -> out_images (the images, blacked out where flagged), has_nsfw_concepts [B].
    This stand-in returns the images unchanged and flags nothing."""
    F, B = TensorProto.FLOAT, TensorProto.BOOL
    nodes = [helper.make_node("Identity", ["images"], ["out_images"], name="/Identity")]
    m = stub_model([("clip_input", F, ["batch", "channels", "height", "width"]),
                    ("images", F, ["batch", "height", "width", "channels"])],
                   [("has_nsfw_concepts", B, [("clip_input", 0, "batch")])], nodes_before=nodes)
    m.graph.output.insert(0, _vi("out_images", F, ["batch", "height", "width", "channels"]))
    return m


def olive_unet_model():
    """What identifies an Olive / ORT-transformers optimized UNet: com.microsoft fused ops (NhwcConv,
    GroupNorm in channels-last) and float16 I/O. Shapes and dims follow Olive's SD UNet config names."""
    H = TensorProto.FLOAT16
    w = numpy_helper.from_array(np.zeros((4, 4, 3, 3), np.float16), "conv_in.weight")
    b = numpy_helper.from_array(np.zeros((4,), np.float16), "conv_in.bias")
    gamma = numpy_helper.from_array(np.ones((4,), np.float16), "norm.weight")
    beta = numpy_helper.from_array(np.zeros((4,), np.float16), "norm.bias")
    nodes = [
        helper.make_node("Transpose", ["sample"], ["nhwc"], name="Transpose_0", perm=[0, 2, 3, 1]),
        helper.make_node("NhwcConv", ["nhwc", "conv_in.weight", "conv_in.bias"], ["conv"], name="NhwcConv_0",
                         domain="com.microsoft", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("GroupNorm", ["conv", "norm.weight", "norm.bias"], ["normed"], name="GroupNorm_0",
                         domain="com.microsoft", activation=1, channels_last=1, epsilon=1e-5, groups=2),
        helper.make_node("Transpose", ["normed"], ["out_sample"], name="Transpose_1", perm=[0, 3, 1, 2]),
    ]
    graph = helper.make_graph(
        nodes, "olive_unet",
        [_vi("sample", H, ["unet_sample_batch", 4, "unet_sample_height", "unet_sample_width"]),
         _vi("timestep", H, ["unet_time_batch"]),
         _vi("encoder_hidden_states", H, ["unet_hidden_batch", "unet_hidden_sequence", 768])],
        [_vi("out_sample", H, ["unet_sample_batch", 4, "unet_sample_height", "unet_sample_width"])],
        [w, b, gamma, beta])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)],
                          producer_name="onnxruntime.transformers")
    m.ir_version = 7
    return m
