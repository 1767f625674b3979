"""UNet exporter variants derived from one genuine export, because torch 1.13 needs 20-40 s of CPU per UNet
export (its ONNX passes scale with the ~7,000 nodes, not with the widths) and the CI budget is about a minute.

Each edit reproduces what a genuine export of the variant contains, as compared node by node with genuine
exports (`make_test_models.py --genuine` exports every variant for real; README.md "Derived variants" gives
the comparison). The only differences left are the numbering of anonymous constants and the order of a few
shape-computation nodes near the timestep, which no consumer of the graph depends on.

  optimum (base)  timestep float32 [] -> /Unsqueeze -> /Expand -> /time_proj/Cast -> ...
  optimum-old     timestep int64 ["steps"] -> /Expand -> /time_proj/Cast (the Cast then converts int64)
  script          timestep float32 ["batch"] -> /Expand; every sample axis dynamic; the output dims named as
                  torch names undeclared ones (Convout_sample_dim_N)
  inpaint         conv_in.weight [C, 9, 3, 3], sample channels 9
  lcm             input timestep_cond [batch_size, 256] -> /time_embedding/cond_proj/MatMul (anonymous
                  transposed weight) -> /time_embedding/Add (time_proj output + it) -> linear_1
"""
import re

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def _set_dims(vi, dims, elem=None):
    t = vi.type.tensor_type
    if elem is not None:
        t.elem_type = elem
    del t.shape.dim[:]
    for d in dims:
        x = t.shape.dim.add()
        if isinstance(d, int):
            x.dim_value = d
        else:
            x.dim_param = d


def _input(model, name):
    return next(i for i in model.graph.input if i.name == name)


def _drop_timestep_unsqueeze(model):
    """Remove the Unsqueeze a 0-d timestep needs (t[None]); its consumers read the input directly."""
    g = model.graph
    users = [n for n in g.node if "timestep" in n.input]
    if len(users) != 1 or users[0].op_type != "Unsqueeze":
        raise ValueError("expected the scalar timestep to feed one Unsqueeze")
    u = users[0]
    for n in g.node:
        for i, x in enumerate(n.input):
            if x == u.output[0]:
                n.input[i] = "timestep"
    g.node.remove(u)
    axes = u.input[1] if len(u.input) > 1 else None
    if axes and not any(axes in n.input for n in g.node):  # its axes Constant is now unused
        prod = [n for n in g.node if axes in n.output]
        for p in prod:
            g.node.remove(p)


def timestep_int64_steps(model):
    _drop_timestep_unsqueeze(model)
    _set_dims(_input(model, "timestep"), ["steps"], TensorProto.INT64)


def script_io(model, cross_dim):
    _drop_timestep_unsqueeze(model)
    _set_dims(_input(model, "timestep"), ["batch"], TensorProto.FLOAT)
    _set_dims(_input(model, "sample"), ["batch", "channels", "height", "width"])
    _set_dims(_input(model, "encoder_hidden_states"), ["batch", "sequence", cross_dim])
    out = model.graph.output[0]
    out_ch = out.type.tensor_type.shape.dim[1].dim_value
    _set_dims(out, ["Convout_sample_dim_0", out_ch, "Convout_sample_dim_2", "Convout_sample_dim_3"])


def replace_initializer(model, name, array):
    for i, t in enumerate(model.graph.initializer):
        if t.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
            return
    raise KeyError(name)


def in_channels(model, conv_in_weight):
    replace_initializer(model, "conv_in.weight", conv_in_weight)
    s = _input(model, "sample").type.tensor_type.shape.dim[1]
    s.ClearField("dim_param")
    s.dim_value = conv_in_weight.shape[1]


def add_timestep_cond(model, cond_proj_weight):
    """cond_proj_weight: torch's Linear weight [time_proj width, cond dim]; the MatMul takes its transpose."""
    g = model.graph
    gemm = next(n for n in g.node if n.name == "/time_embedding/linear_1/Gemm")
    used = [int(x) for t in g.initializer for x in re.findall(r"^onnx::\w+_(\d+)$", t.name)]
    wname = f"onnx::MatMul_{max(used, default=0) + 1}"
    g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(cond_proj_weight.T, np.float32), wname))
    mm_out = "/time_embedding/cond_proj/MatMul_output_0"
    add_out = "/time_embedding/Add_output_0"
    mm = helper.make_node("MatMul", ["timestep_cond", wname], [mm_out], name="/time_embedding/cond_proj/MatMul")
    add = helper.make_node("Add", [gemm.input[0], mm_out], [add_out], name="/time_embedding/Add")
    gemm.input[0] = add_out
    pos = list(g.node).index(gemm)
    g.node.insert(pos, add)
    g.node.insert(pos, mm)
    g.input.append(helper.make_tensor_value_info("timestep_cond", TensorProto.FLOAT,
                                                 ["batch_size", cond_proj_weight.shape[1]]))
