"""Compares two ONNX graphs structurally, ignoring what two exports of the same module legitimately number
differently: anonymous tensor and node names (onnx::MatMul_8312, Constant_304, /Constant_3). Used to check
that derive.py's variants equal genuine exports (make_test_models.py --genuine).

    /usr/bin/python3 tools/test-models/compare_graphs.py A/model.onnx B/model.onnx

Each node is described by its op type, its scoped name with the trailing _N index removed, its attributes,
and for every input: the producing node's description (recursively, by id), an initializer's or Constant's
value hash, or the graph input's name. The multisets of descriptions are compared, as are the graph inputs
and outputs (names, types, shapes).
"""
import collections
import hashlib
import re
import sys

import onnx
from onnx import numpy_helper


def _scope(name):
    # "/down_blocks.0/attentions.0/Unsqueeze_2" -> "/down_blocks.0/attentions.0/Unsqueeze"; unscoped names
    # ("Constant_304", "Identity_12") carry only a counter
    return re.sub(r"_\d+$", "", name) if name.startswith("/") else ""


def describe(path):
    m = onnx.load(path)
    g = m.graph
    value = {t.name: hashlib.sha1(numpy_helper.to_array(t).tobytes() + str(t.data_type).encode()).hexdigest()[:12]
             for t in g.initializer}
    desc = {}
    for n in g.node:  # nodes are topologically sorted
        attrs = []
        for a in sorted(n.attribute, key=lambda a: a.name):
            if a.type == onnx.AttributeProto.TENSOR:
                arr = numpy_helper.to_array(a.t)
                attrs.append((a.name, hashlib.sha1(arr.tobytes() + str(a.t.data_type).encode()).hexdigest()[:12]))
            else:
                attrs.append((a.name, str(onnx.helper.get_attribute_value(a))))
        ins = []
        for x in n.input:
            if x in desc:
                ins.append(desc[x])
            elif x in value:
                ins.append("init:" + value[x])
            else:
                ins.append("input:" + x)
        key = hashlib.sha1(repr((n.op_type, _scope(n.name), attrs, ins)).encode()).hexdigest()[:16]
        for i, o in enumerate(n.output):
            desc[o] = f"{key}:{i}"
    nodes = collections.Counter(desc[n.output[0]].split(":")[0] for n in g.node)
    io = [(v.name, v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
          for v in list(g.input) + list(g.output)]
    outs = [desc.get(o.name, o.name) for o in g.output]
    return nodes, io, outs, len(g.node)


def main():
    a, b = describe(sys.argv[1]), describe(sys.argv[2])
    same_nodes = a[0] == b[0]
    print(f"nodes: {a[3]} vs {b[3]}; node multiset {'equal' if same_nodes else 'DIFFERENT'}; "
          f"outputs computed {'identically' if a[2] == b[2] else 'DIFFERENTLY'}; io {'equal' if a[1] == b[1] else 'DIFFERENT'}")
    if a[1] != b[1]:
        print("  io A:", a[1])
        print("  io B:", b[1])
    if not same_nodes:
        only_a, only_b = a[0] - b[0], b[0] - a[0]
        print(f"  {sum(only_a.values())} node descriptions only in A, {sum(only_b.values())} only in B")
    sys.exit(0 if same_nodes and a[1] == b[1] and a[2] == b[2] else 1)


if __name__ == "__main__":
    main()
