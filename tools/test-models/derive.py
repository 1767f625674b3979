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
  SDXL            transformer_layers_per_block > 1: the export has one BasicTransformerBlock per
                  Transformer2DModel, and the others are copies of its nodes (replicate_transformer_blocks),
                  chained, with their own weights (SDXL's 70 blocks would otherwise cost ~2-4 minutes of export)
"""
import re

import numpy as np
import onnx
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


def _next_number(g):
    """One past the largest trailing number of any anonymous name (onnx::X_N tensors, Constant_N nodes)."""
    used = [0]
    for t in g.initializer:
        used += [int(x) for x in re.findall(r"^onnx::\w+_(\d+)$", t.name)]
    for n in g.node:
        used += [int(x) for x in re.findall(r"^\w+_(\d+)$", n.name)]
        for o in n.output:
            used += [int(x) for x in re.findall(r"^onnx::\w+_(\d+)$", o)]
    return max(used) + 1


def replicate_transformer_blocks(model, state_dict, counts, sink=None, base_dir=""):
    """Turns an export with one BasicTransformerBlock per Transformer2DModel into the export of the model with
    `counts[scope]` blocks there (scope: '/down_blocks.1/attentions.0/'), as torch would have written it:
    block k's nodes are block 0's with `transformer_blocks.k` in their names, reading block k-1's output;
    the unscoped Constants torch writes for block 0 alone (Unsqueeze axes) are copied with new numbers;
    named weights come from state_dict (`...transformer_blocks.k.norm1.weight`) and the anonymous transposed
    MatMul weights (onnx::MatMul_N) from the state_dict entry whose transpose block 0's one is (found by
    value); proj_out then reads the last block's output. Genuine exports compare equal (README). sink: where
    new weights go (onnx_tools.ExternalSink for graphs over 2 GB; default: inline); base_dir: where the
    model's own external data lies, if it was loaded without it."""
    if sink is None:
        sink = numpy_helper.from_array
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    counter = [_next_number(g)]

    def fresh(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    for scope, count in counts.items():
        if count <= 1:
            continue
        sd_prefix = scope.strip("/").replace("/", ".") + ".transformer_blocks."
        b0 = scope + "transformer_blocks.0/"
        nodes = list(g.node)
        producer = {o: i for i, n in enumerate(nodes) for o in n.output}
        consumers = {}
        for i, n in enumerate(nodes):
            for x in n.input:
                consumers.setdefault(x, []).append(i)
        blk = [i for i, n in enumerate(nodes) if n.name.startswith(b0)]
        inside = {o for i in blk for o in nodes[i].output}
        # unscoped Constants that only block 0 reads
        own_consts = set()
        for i in blk:
            for x in nodes[i].input:
                j = producer.get(x)
                if j is not None and nodes[j].op_type == "Constant" and not nodes[j].name.startswith("/") \
                        and all(c in blk for c in consumers[x]):
                    own_consts.add(j)
        group = sorted(set(blk) | own_consts)
        group_out = {o for i in group for o in nodes[i].output}
        # the block's hidden-state input (proj_in's output) and its output (read by proj_out)
        ext_in = {x for i in blk for x in nodes[i].input if x and x not in group_out and x in producer
                  and nodes[producer[x]].op_type != "Constant"}
        if len(ext_in) != 1:
            raise ValueError(f"{b0}: expected one hidden-state input, found {sorted(ext_in)}")
        x_in = ext_in.pop()
        y_out = [o for o in inside if any(c not in group for c in consumers.get(o, []))]
        if len(y_out) != 1 or any(o.name in inside for o in g.output):
            raise ValueError(f"{b0}: expected one output, found {y_out}")
        y_out = y_out[0]
        # block 0's weights by name and the state-dict entry behind each anonymous one
        w0 = {k[len(sd_prefix) + 2:]: v.detach().numpy() for k, v in state_dict.items() if k.startswith(sd_prefix + "0.")}
        anon = {}
        for i in blk:
            for x in nodes[i].input:
                if x in inits and not x.startswith(sd_prefix + "0."):
                    arr = numpy_helper.to_array(inits[x], base_dir)
                    hit = [k for k, v in w0.items() if v.ndim == 2 and v.T.shape == arr.shape and np.array_equal(v.T, arr)]
                    if len(hit) != 1:
                        raise ValueError(f"{x} ({b0}): {len(hit)} state-dict matches")
                    anon[x] = hit[0]
        prev = y_out
        new_nodes = []
        for k in range(1, count):
            ren = {x_in: prev}
            for i in group:
                for o in nodes[i].output:
                    ren[o] = o.replace("transformer_blocks.0/", f"transformer_blocks.{k}/") if o in inside \
                        else fresh(re.sub(r"_\d+$", "", o))
            for x in dict.fromkeys(x for i in blk for x in nodes[i].input if x in inits):  # graph order: same files every run
                key = x[len(sd_prefix) + 2:] if x.startswith(sd_prefix + "0.") else anon[x]
                arr = state_dict[f"{sd_prefix}{k}.{key}"].detach().numpy()
                name = f"{sd_prefix}{k}.{key}" if x.startswith(sd_prefix + "0.") else fresh("onnx::MatMul")
                g.initializer.append(sink(np.ascontiguousarray(arr if x.startswith(sd_prefix + "0.") else arr.T, np.float32), name))
                ren[x] = name
            for i in group:
                n = onnx.NodeProto()
                n.CopyFrom(nodes[i])
                n.name = n.name.replace("transformer_blocks.0/", f"transformer_blocks.{k}/") if i in blk else fresh("Constant")
                for j, x in enumerate(n.input):
                    n.input[j] = ren.get(x, x)
                for j, o in enumerate(n.output):
                    n.output[j] = ren[o]
                new_nodes.append(n)
            prev = ren[y_out]
        for i, n in enumerate(nodes):
            if i not in group:
                for j, x in enumerate(n.input):
                    if x == y_out:
                        n.input[j] = prev
        at = max(group) + 1
        del g.node[:]
        g.node.extend(nodes[:at] + new_nodes + nodes[at:])
    return model
