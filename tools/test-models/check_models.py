"""Checks folders written by make_test_models.py: onnx.checker on every model, then every reference call run
on onnxruntime-node (run_onnx.mjs) and compared with the PyTorch reference tensors.

    /usr/bin/python3 tools/test-models/check_models.py DIR [NAME ...]

Float16 folders are run twice: as written (onnxruntime's CPU provider may lack float16 kernels) and upcast to
float32 (every float16 initializer, Cast target and I/O back to float32), which is what an engine without
float16 CPU kernels has to do. Prints one line per check; exits 1 on any mismatch.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
NP = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32}


def upcast_fp32(m):
    for t in m.graph.initializer:
        if t.data_type == TensorProto.FLOAT16:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
    for n in m.graph.node:
        for a in n.attribute:
            if a.name in ("to", "dtype") and a.i == TensorProto.FLOAT16:
                a.i = TensorProto.FLOAT
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT16:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float32), a.t.name))
    for vi in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT16:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
    return m


def checker(folder, plan):
    """onnx.checker on every model.onnx; folders without references (the refused kinds) also get a load-only
    onnxruntime run, so the report says which of them the CPU provider opens."""
    tag = os.path.basename(folder)
    has_ref = os.path.exists(os.path.join(folder, "reference", "reference.json"))
    lines = []
    for root, _, files in sorted(os.walk(folder)):
        if "model.onnx" in files:
            p = os.path.join(root, "model.onnx")
            rel = os.path.relpath(p, folder)
            if not has_ref:
                plan.runs.append({"id": f"{tag}.load.{os.path.dirname(rel)}", "model": p, "load_only": True})
            try:
                onnx.checker.check_model(p)
                lines.append((True, f"{tag} checker {rel}"))
            except Exception as e:  # com.microsoft ops have no schema in onnx: expected for olive-fused
                msg = str(e).splitlines()[0][:120]
                expected = "com.microsoft" in open(p, "rb").read().decode("latin1")
                lines.append((expected, f"{tag} checker {rel}: {msg}"
                              + (" (expected: com.microsoft ops)" if expected else "")))
    return lines


class Plan:
    def __init__(self, tmp):
        self.tmp = tmp
        self.runs = []
        self.expect = []  # (run id, output name, reference array, tolerance, label)

    def input(self, run_id, name, arr, dtype):
        f = os.path.join(self.tmp, f"{run_id}.in.{name}.bin")
        np.ascontiguousarray(arr, dtype=NP[dtype]).tofile(f)
        return {"name": name, "dtype": dtype, "shape": list(np.shape(arr)), "file": f}


def load_ref(folder, ref, name):
    e = ref["tensors"][name]
    if "file" in e:
        return np.fromfile(os.path.join(folder, "reference", e["file"]), dtype="<f4").reshape(e["shape"]), e
    return np.array(e["values"], dtype=np.int64).reshape(e["shape"]), e


def plan_folder(folder, plan, tag, upcast):
    ref = json.load(open(os.path.join(folder, "reference", "reference.json")))
    fp16 = ref["tolerance"].get("abs", 0) >= 1e-2
    tol = 2e-2 if fp16 else 1e-4

    def model_path(comp, call=None, edit=None, suffix=""):
        p = os.path.join(folder, comp, "model.onnx")
        if edit is None and not upcast:
            return p
        m = onnx.load(p, load_external_data=False)
        external = sorted({e.value for t in m.graph.initializer for e in t.external_data if e.key == "location"})
        if not external:
            m = onnx.load(p)
        elif upcast or "replace_token_embedding" in call:
            raise ValueError(f"{p}: weight edits of a model with external data are not implemented")
        if upcast:
            m = upcast_fp32(m)
        if edit:
            edit(m)
        # a folder per edited copy: a model over 2 GB keeps its weights outside, reached through hard links
        # (onnxruntime refuses a symbolic link that leaves the model's folder)
        d = os.path.join(plan.tmp, f"{tag}.{comp}{suffix}")
        os.makedirs(d, exist_ok=True)
        for loc in external:
            try:
                os.link(os.path.join(os.path.dirname(p), loc), os.path.join(d, loc))
            except OSError:
                raise ValueError(f"{p}: cannot link its external data into {plan.tmp}; use a TMPDIR on the same file system")
        q = os.path.join(d, "model.onnx")
        onnx.save_model(m, q)
        return q

    def dt(e):
        return "float32" if upcast and e["onnx_dtype"] == "float16" else e["onnx_dtype"]

    for call in ref["calls"]:
        rid = f"{tag}.{call['name']}"
        comp = call["component"]
        inputs = []
        for iname, tname in call["inputs"].items():
            arr, e = load_ref(folder, ref, tname)
            inputs.append(plan.input(rid, iname, arr, dt(e)))
        outs = dict(call.get("outputs", {}))
        extra = {}
        for k, tname in call.get("intermediates", {}).items():
            e = ref["tensors"][tname]
            extra[e["onnx_tensor"]] = tname
        edit = None
        if "replace_token_embedding" in call:
            r = call["replace_token_embedding"]
            vec, _ = load_ref(folder, ref, r["vector"])

            def edit(m, r=r, vec=vec):
                for t in m.graph.initializer:
                    if t.name == "text_model.embeddings.token_embedding.weight":
                        w = numpy_helper.to_array(t).copy()
                        w[r["token_id"]] = vec.astype(w.dtype)
                        t.CopyFrom(numpy_helper.from_array(w, t.name))
                        return
                raise KeyError("token embedding initializer not found")
        if extra:
            prev = edit

            def edit(m, prev=prev, names=list(extra)):
                if prev:
                    prev(m)
                for n in names:
                    m.graph.output.append(onnx.ValueInfoProto(name=n))
        random = call.get("random_outputs", {})
        names = list(outs) + list(extra) + list(random)
        plan.runs.append({"id": rid, "model": model_path(comp, call, edit, "." + call["name"] if edit else ""),
                          "inputs": inputs, "outputs": names})
        for oname, tname in list(outs.items()) + list(extra.items()):
            arr, _ = load_ref(folder, ref, tname)
            plan.expect.append((rid, oname, arr, tol, f"{tag} {call['name']} {tname.split('.', 1)[1]}"))
        for oname in random:
            mean, _ = load_ref(folder, ref, call["derived"]["mean"])
            logvar, _ = load_ref(folder, ref, call["derived"]["logvar"])
            plan.expect.append((rid, oname, ("random", mean, logvar), tol, f"{tag} {call['name']} {oname} (sampled)"))
    lines = []
    # SDXL: the conditioning the references derive (concatenated penultimate states) from the references' own
    # hidden states, so a reader can trust the tensor names it points at
    cond = ref.get("conditioning")
    if cond:
        parts = [load_ref(folder, ref, c["outputs"][f"hidden_states.{len([k for k in c['outputs'] if k.startswith('hidden_states.')]) - 2}"])[0]
                 for c in ref["calls"] if c["component"].startswith("text_encoder")]
        got, _ = load_ref(folder, ref, cond["prompt_embeds"])
        d = float(np.abs(np.concatenate(parts, axis=-1) - got).max())
        lines.append((d == 0.0, f"{tag} conditioning.prompt_embeds = concat(hidden_states[-2] of each encoder): max diff {d:.1e}"))
    hs = [c for c in ref["calls"] if c["name"] == "text_encoder.hidden_states"]
    if not hs:
        return lines
    # the clip-skip reference against the graph's own final layer norm weights
    te = onnx.load(os.path.join(folder, "text_encoder", "model.onnx"))
    w = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in te.graph.initializer
         if t.name.startswith("text_model.final_layer_norm")}
    hs = hs[0]
    h2, _ = load_ref(folder, ref, hs["intermediates"][f"hidden_states.{len(hs['intermediates']) - 2}"])
    mu, var = h2.mean(-1, keepdims=True), h2.var(-1, keepdims=True)
    ln = (h2 - mu) / np.sqrt(var + 1e-5) * w["text_model.final_layer_norm.weight"] + w["text_model.final_layer_norm.bias"]
    skip, _ = load_ref(folder, ref, hs["derived"]["clip_skip_2"])
    return lines + [(float(np.abs(ln - skip).max()) < tol * 10, f"{tag} clip_skip_2 = final_layer_norm(hidden_states[-2]) "
                     f"(numpy, graph weights): max diff {np.abs(ln - skip).max():.2e}")]


def compare(plan, report):
    by_id = {r["id"]: r for r in report}
    lines = []
    for rid, oname, want, tol, label in plan.expect:
        r = by_id[rid]
        if "error" in r:
            lines.append((False, f"{label}: onnxruntime error: {r['error'][:160]}"))
            continue
        o = r["outputs"][oname]
        got = np.fromfile(o["file"], dtype=NP.get(o["dtype"], np.float32)).reshape(o["shape"]).astype(np.float32)
        if isinstance(want, tuple):  # a sampled latent: check it is mean + std * N(0, 1) in distribution
            _, mean, logvar = want
            z = (got - mean) / np.exp(0.5 * np.clip(logvar, -30, 20))
            ok = got.shape == mean.shape and abs(z.mean()) < 0.2 and 0.8 < z.std() < 1.2
            lines.append((ok, f"{label}: shape {list(got.shape)}, (x - mean) / std has mean {z.mean():.3f} std {z.std():.3f}"))
            continue
        if got.shape != want.shape:
            lines.append((False, f"{label}: shape {list(got.shape)} != {list(want.shape)}"))
            continue
        scale = max(1.0, float(np.abs(want).max()))
        d = float(np.abs(got - want).max())
        lines.append((d <= tol * scale, f"{label}: max |ort - torch| {d:.2e} (max |ref| {np.abs(want).max():.2f})"))
    return lines


def main():
    root = sys.argv[1]
    names = sys.argv[2:] or sorted(n for n in os.listdir(root) if not n.startswith("."))
    all_ok = True
    with tempfile.TemporaryDirectory() as tmp:
        plan = Plan(tmp)
        lines = []
        for n in names:
            folder = os.path.join(root, n)
            lines += checker(folder, plan)
            if os.path.exists(os.path.join(folder, "reference", "reference.json")):
                ref = json.load(open(os.path.join(folder, "reference", "reference.json")))
                lines += plan_folder(folder, plan, n, upcast=False)
                if ref["calls"] and any(ref["tensors"][t]["onnx_dtype"] == "float16" for t in ref["tensors"]):
                    lines += plan_folder(folder, plan, n + "(upcast-fp32)", upcast=True)
        json.dump({"outdir": tmp, "runs": plan.runs}, open(os.path.join(tmp, "plan.json"), "w"))
        subprocess.run(["node", os.path.join(HERE, "run_onnx.mjs"), os.path.join(tmp, "plan.json")], check=True)
        report = json.load(open(os.path.join(tmp, "report.json")))
        lines += compare(plan, report)
        for r in report:
            if r["id"].split(".")[1:2] == ["load"]:
                # informational: olive-fused is expected not to open on the CPU provider
                msg = r.get("error") or "opens: " + "; ".join(f"{k} {v}" for k, v in r.get("io", {}).items())
                lines.append((True, f"{r['id']} onnxruntime {'ERROR ' if 'error' in r else ''}{msg[:200]}"))
    for ok, text in lines:
        print(("ok   " if ok else "FAIL ") + text)
        all_ok &= ok
    print("all ok" if all_ok else "FAILURES")
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
