"""Export jobs: each builds one torch model from its seed, exports it in the requested exporter variants, and
computes PyTorch's outputs on seeded inputs. Jobs are independent (they may run in worker processes); the
layouts then copy the files and the reference tensors they need.

Exporter variants (names, dtypes and dynamic axes as each exporter declares them):
  optimum      optimum >= 1.24: UNet timestep float32 scalar, VAE encoder -> latent_parameters
  optimum-old  optimum <= 1.22: UNet timestep int64 [steps], VAE encoder -> latent_sample drawn in the graph
               (1.23 already wrote latent_parameters but still the int64 timestep)
  script       diffusers' convert_stable_diffusion_checkpoint_to_onnx.py: int32 input_ids, float32 timestep
               [batch], every sample axis dynamic (channels too), latent_sample drawn in the graph
"""
import os
import time

import numpy as np
import torch

import arch as A
import onnx_tools as T

# Reference inputs: CI uses the smallest latent the 3 downsamplings allow in one direction and twice that in
# the other (8 x 16 latent = 64 x 128 px), so that a height/width mix-up changes the result; full uses 256 px.
LATENT_HW = {"ci": (8, 16), "full": (32, 32)}
TIMESTEP_SCALAR = 621.5  # exact in float16 too
TIMESTEPS_BATCH = [621.5, 20.25]
TIMESTEPS_INT = [621, 20]
LCM_GUIDANCE = [8.0, 2.5]


def _gen(*parts):
    return torch.Generator().manual_seed(A.seed_of("reference-input", *parts))


def _np(t):
    return t.detach().contiguous().numpy().astype(np.float32) if t.is_floating_point() else t.detach().numpy()


# ------------------------------------------------------------------------------------------ text encoder
TEXT_IO = {
    "optimum": (torch.int64, {"input_ids": {0: "batch_size", 1: "sequence_length"},
                              "last_hidden_state": {0: "batch_size", 1: "sequence_length"},
                              "pooler_output": {0: "batch_size"}}),
    "script": (torch.int32, {"input_ids": {0: "batch", 1: "sequence"}}),
}


def text_job(family, scale, variants, work, ids_pair, ti_position):
    """ids_pair: [2, 77] ids of ("", prompt); ti_position: a position of the prompt whose token id occurs once."""
    t0 = time.time()
    cfg = A.text_config(family, scale)
    model = A.build_text(cfg, A.seed_of(family, "text_encoder", scale))
    ids = torch.tensor(ids_pair, dtype=torch.int64)
    files = {}
    for v in variants:
        dtype, dyn = TEXT_IO[v]
        path = os.path.join(work, f"text_encoder-{family}-{v}", "model.onnx")
        T.export(model, (ids.to(dtype),), path, ["input_ids"], ["last_hidden_state", "pooler_output"], dyn)
        files[v] = os.path.dirname(path)
    with torch.no_grad():
        last, pooled = model(ids)
        one = ids[1:2]
        states, last1 = A.text_hidden_states(model, one)
        # ComfyUI's SD-1.x clip skip: hidden_states[-2] through the final layer norm
        skip2 = model.text_model.final_layer_norm(states[-2])
        vec = torch.randn(cfg["hidden_size"], generator=_gen(family, scale, "ti"))
        _, ti_last = A.text_hidden_states(model, one, replace=(ti_position, vec))
    refs = {
        "last_hidden_state": _np(last), "pooler_output": _np(pooled),
        "hidden_states": [_np(s) for s in states], "last_hidden_state_1": _np(last1),
        "clip_skip_2": _np(skip2), "ti_vector": _np(vec), "ti_last_hidden_state": _np(ti_last),
    }
    return {"files": files, "refs": refs, "config": cfg, "params": A.count_params(model), "seconds": time.time() - t0}


# ------------------------------------------------------------------------------------------ UNet
UNET_ARCH = {  # arch -> (family, in_channels, time_cond_proj_dim)
    "sd15": ("sd15", 4, None),
    "sd15-lcm": ("sd15", 4, 256),
    "sd15-inpaint": ("sd15", 9, None),
    "sd21": ("sd21", 4, None),
}
UNET_DYN = {
    "optimum": {"sample": {0: "batch_size", 2: "height", 3: "width"},
                "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
                "timestep_cond": {0: "batch_size"},
                "out_sample": {0: "batch_size", 2: "height", 3: "width"}},
    "optimum-old": {"sample": {0: "batch_size", 2: "height", 3: "width"}, "timestep": {0: "steps"},
                    "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
                    "timestep_cond": {0: "batch_size"},
                    "out_sample": {0: "batch_size", 2: "height", 3: "width"}},
    "script": {"sample": {0: "batch", 1: "channels", 2: "height", 3: "width"}, "timestep": {0: "batch"},
               "encoder_hidden_states": {0: "batch", 1: "sequence"}},
}


def unet_variant_model(arch, scale, base):
    """The UNet of `arch`: the family's base weights, plus its own seeded conv_in (inpaint) or cond_proj (LCM),
    so a derived ONNX (base graph + the changed weights) and a genuine export hold the same numbers."""
    family, cin, tcond = UNET_ARCH[arch]
    cfg = A.unet_config(family, scale, in_channels=cin, time_cond_proj_dim=tcond)
    if arch == family:
        return base, cfg
    model = A.build_unet(cfg, A.seed_of(arch, "unet", scale))
    own = model.state_dict()
    for k, v in base.state_dict().items():
        if k in own and own[k].shape == v.shape:  # all but inpaint's 9-channel conv_in.weight and LCM's cond_proj
            own[k] = v
    model.load_state_dict(own)
    return model, cfg


def unet_inputs(arch, scale, variant, cfg):
    family, cin, tcond = UNET_ARCH[arch]
    h, w = LATENT_HW[scale]
    sample = torch.randn(2, cin, h, w, generator=_gen(arch, scale, "sample"))
    ehs = torch.randn(2, 77, cfg["cross_attention_dim"], generator=_gen(arch, scale, "encoder_hidden_states"))
    timestep = {"optimum": torch.tensor(TIMESTEP_SCALAR, dtype=torch.float32),
                "optimum-old": torch.tensor(TIMESTEPS_INT, dtype=torch.int64),
                "script": torch.tensor(TIMESTEPS_BATCH, dtype=torch.float32)}[variant]
    cond = A.guidance_embedding(LCM_GUIDANCE, tcond) if tcond else None
    return sample, timestep, ehs, cond


def unet_job(family, scale, wanted, work, genuine=False):
    """Exports the family's base UNet (optimum layout) once and every wanted (arch, variant) from it, derived
    (derive.py) or, with genuine=True, exported again. Returns {(arch, variant): result}."""
    import onnx
    import derive as D

    t0 = time.time()
    base_cfg = A.unet_config(family, scale)
    base = A.build_unet(base_cfg, A.seed_of(family, "unet", scale))
    base_dir = os.path.join(work, f"unet-{family}-base")
    base_path = os.path.join(base_dir, "model.onnx")
    s, t, e, _ = unet_inputs(family, scale, "optimum", base_cfg)
    T.export(base, (s, t, e), base_path, ["sample", "timestep", "encoder_hidden_states"], ["out_sample"],
             {k: v for k, v in UNET_DYN["optimum"].items() if k != "timestep_cond"})
    big = T.uses_external_data(base_path)
    if big:  # full scale: one data file instead of torch's one file per tensor
        T.merge_external(base_path, "model.onnx_data")
    out = {}
    for arch, variant in wanted:
        t1 = time.time()
        model, cfg = unet_variant_model(arch, scale, base)
        sample, timestep, ehs, cond = unet_inputs(arch, scale, variant, cfg)
        folder = os.path.join(work, f"unet-{arch}-{variant}")
        path = os.path.join(folder, "model.onnx")
        data_name = "weights.pb" if variant == "script" else "model.onnx_data"
        m = None
        if (arch, variant) == (family, "optimum"):
            folder = base_dir  # the base export is this variant
        elif genuine:
            args, names = [sample, timestep, ehs], ["sample", "timestep", "encoder_hidden_states"]
            if cond is not None:
                args.append(cond)
                names.append("timestep_cond")
            dyn = {k: v for k, v in UNET_DYN[variant].items() if k in names or k == "out_sample"}
            T.export(model, tuple(args), path, names, ["out_sample"], dyn)
            if T.uses_external_data(path):
                T.merge_external(path, data_name)
            elif variant == "script":
                m = onnx.load(path)
        else:
            m = onnx.load(base_path)
            if arch.endswith("-inpaint"):
                D.in_channels(m, model.conv_in.weight.detach().numpy())
            if cond is not None:
                D.add_timestep_cond(m, model.time_embedding.cond_proj.weight.detach().numpy())
            if variant == "optimum-old":
                D.timestep_int64_steps(m)
            elif variant == "script":
                D.script_io(m, cfg["cross_attention_dim"])
        if m is not None:
            os.makedirs(folder, exist_ok=True)
            for f in os.listdir(folder):
                os.remove(os.path.join(folder, f))
            if big or variant == "script":  # the script always collates the UNet weights into weights.pb
                T.save_with_external(m, path, data_name)
            else:
                onnx.save_model(m, path)
        with torch.no_grad():
            o = model(sample, timestep, ehs, cond)
        refs = {"sample": _np(sample), "timestep": _np(timestep), "encoder_hidden_states": _np(ehs), "out_sample": _np(o)}
        if cond is not None:
            refs["timestep_cond"] = _np(cond)
            refs["guidance_scale"] = list(LCM_GUIDANCE)
        out[(arch, variant)] = {"files": {variant: folder}, "refs": refs, "config": cfg,
                                "params": A.count_params(model), "seconds": time.time() - t1}
    return {"variants": out, "seconds": time.time() - t0}


# ------------------------------------------------------------------------------------------ VAE
def vae_job(scale, variants, work):
    """variants: subset of enc-optimum, enc-optimum-old, enc-script, dec-optimum, dec-script."""
    t0 = time.time()
    cfg = A.vae_config(scale)
    vae = A.build_vae(cfg, A.seed_of("sd", "vae", scale))
    h, w = LATENT_HW[scale]
    latent = torch.randn(1, 4, h, w, generator=_gen("vae", scale, "latent"))
    image = torch.rand(1, 3, 8 * h, 8 * w, generator=_gen("vae", scale, "image")) * 2 - 1
    files = {}
    lat_opt = {0: "batch_size", 2: "height_latent", 3: "width_latent"}
    img_opt = {0: "batch_size", 2: "height", 3: "width"}
    every = {0: "batch", 1: "channels", 2: "height", 3: "width"}
    for v in variants:
        folder = os.path.join(work, f"vae-{v}")
        path = os.path.join(folder, "model.onnx")
        if v == "enc-optimum":
            T.export(A.VaeEncoderParams(vae), (image,), path, ["sample"], ["latent_parameters"],
                     {"sample": img_opt, "latent_parameters": lat_opt})
        elif v == "enc-optimum-old":
            T.export(A.VaeEncoderSampled(vae), (image,), path, ["sample"], ["latent_sample"],
                     {"sample": img_opt, "latent_sample": lat_opt})
        elif v == "enc-script":
            T.export(A.VaeEncoderSampled(vae), (image,), path, ["sample"], ["latent_sample"], {"sample": every})
        elif v == "dec-optimum":
            T.export(_decoder(vae), (latent,), path, ["latent_sample"], ["sample"],
                     {"latent_sample": lat_opt, "sample": img_opt})
        elif v == "dec-script":
            T.export(_decoder(vae), (latent,), path, ["latent_sample"], ["sample"], {"latent_sample": every})
        else:
            raise ValueError(v)
        files[v] = folder
    with torch.no_grad():
        decoded = _decoder(vae)(latent)
        params = A.VaeEncoderParams(vae)(image)
    mean, logvar = torch.chunk(params, 2, dim=1)
    refs = {"latent": _np(latent), "decoded": _np(decoded), "image": _np(image), "parameters": _np(params),
            "mean": _np(mean), "logvar": _np(logvar)}
    return {"files": files, "refs": refs, "config": cfg,
            "params": {"encoder": A.count_params(A.VaeEncoderParams(vae)), "decoder": A.count_params(_decoder(vae))},
            "seconds": time.time() - t0}


# ------------------------------------------------------------------------------------------ SDXL
SDXL_UNET_DYN = {"sample": {0: "batch_size", 2: "height", 3: "width"},
                 "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
                 "text_embeds": {0: "batch_size"}, "time_ids": {0: "batch_size"},
                 "out_sample": {0: "batch_size", 2: "height", 3: "width"}}
SDXL_UNET_INPUTS = ["sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"]


def sdxl_unet_io(cfg):
    """Input names and dynamic axes: optimum adds timestep_cond [batch_size, 256] after time_ids when the UNet
    config has time_cond_proj_dim (LCM-SDXL) [optimum UNetOnnxConfig.inputs, recalled]."""
    if cfg.get("time_cond_proj_dim") is None:
        return SDXL_UNET_INPUTS, SDXL_UNET_DYN
    return SDXL_UNET_INPUTS + ["timestep_cond"], dict(SDXL_UNET_DYN, timestep_cond={0: "batch_size"})
# time_ids per batch item: (original height, width, crop top, left, target height, width) for the base,
# (original height, width, crop top, left, aesthetic score) for the refiner (diffusers' defaults 6.0 / 2.5)
SDXL_TIME_IDS = {"sdxl": [[1024, 1024, 0, 0, 1024, 1024], [832, 1216, 0, 64, 832, 1216]],
                 "sdxl-refiner": [[1024, 1024, 0, 0, 6.0], [832, 1216, 0, 64, 2.5]]}


def sdxl_unet_inputs(arch, scale, cfg):
    h, w = LATENT_HW[scale]
    sample = torch.randn(2, 4, h, w, generator=_gen(arch, scale, "sample"))
    ehs = torch.randn(2, 77, cfg["cross_attention_dim"], generator=_gen(arch, scale, "encoder_hidden_states"))
    text_embeds = torch.randn(2, cfg["text_encoder_projection_dim"], generator=_gen(arch, scale, "text_embeds"))
    time_ids = torch.tensor(SDXL_TIME_IDS[A.sdxl_base_arch(arch)], dtype=torch.float32)
    args = (sample, torch.tensor(TIMESTEP_SCALAR, dtype=torch.float32), ehs, text_embeds, time_ids)
    if cfg.get("time_cond_proj_dim"):  # LCM-SDXL: diffusers' guidance embedding of (w - 1), as the lcm layout
        args += (A.guidance_embedding(LCM_GUIDANCE, cfg["time_cond_proj_dim"]),)
    return args


def sdxl_unet_job(arch, scale, work, genuine=False):
    """One SDXL-type UNet, optimum's layout. Unless genuine, torch exports the model with one transformer block
    per Transformer2DModel (same weights for block 0) and derive.replicate_transformer_blocks adds the others:
    torch 1.13 spends ~5 ms per node, and SDXL's 70 blocks make 25,600 nodes (2-4 minutes, vs ~6 s)."""
    import onnx
    import derive as D

    t0 = time.time()
    cfg = A.sdxl_unet_config(arch, scale)
    model = A.build_sdxl_unet(cfg, A.seed_of(arch, "unet", scale))
    args = sdxl_unet_inputs(arch, scale, cfg)
    in_names, dyn = sdxl_unet_io(cfg)
    folder = os.path.join(work, f"unet-{arch}")
    path = os.path.join(folder, "model.onnx")
    if genuine:
        T.export(model, args, path, in_names, ["out_sample"], dyn)
        if T.uses_external_data(path):
            T.merge_external(path, "model.onnx_data")
    else:
        small = A.SDXLUNet(dict(cfg, transformer_layers_per_block=1)).eval()
        sd = model.state_dict()
        small.load_state_dict({k: sd[k] for k in small.state_dict()})
        T.export(small, args, path, in_names, ["out_sample"], dyn)
        del small
        big = A.count_params(model) * 4 > 2_000_000_000  # the full SDXL UNet (10.3 GB): weights outside the protobuf
        data = os.path.join(folder, "model.onnx_data")
        if T.uses_external_data(path):
            T.merge_external(path, "model.onnx_data")
            m = onnx.load(path, load_external_data=False)
        else:
            m = onnx.load(path)
        sink = None
        if big:
            if os.path.exists(data) and not T.uses_external_data(path):
                os.remove(data)
            sink = T.ExternalSink(data)
            for i, t in enumerate(m.graph.initializer):  # the small export's own weights, if torch kept them inline
                if t.data_location != onnx.TensorProto.EXTERNAL and t.data_type == onnx.TensorProto.FLOAT \
                        and len(t.raw_data) >= 1024:
                    m.graph.initializer[i].CopyFrom(sink(onnx.numpy_helper.to_array(t), t.name))
        D.replicate_transformer_blocks(m, sd, A.transformer_scopes(model), sink, folder)
        if sink:
            sink.close()
        onnx.save_model(m, path)
    captured = {}
    hook = model.add_embedding.register_forward_hook(lambda mod, i, o: captured.setdefault("add_embedding", o))
    with torch.no_grad():
        out = model(*args)
    hook.remove()
    names = in_names + ["out_sample", "add_embedding"]
    refs = {k: _np(v) for k, v in zip(names, list(args) + [out, captured["add_embedding"]])}
    if "timestep_cond" in refs:
        refs["guidance_scale"] = list(LCM_GUIDANCE)
    r = {"files": {"optimum": folder}, "refs": refs, "config": cfg, "params": A.count_params(model),
         "seconds": time.time() - t0}
    return {"variants": {(arch, "optimum"): r}, "seconds": time.time() - t0}


def sdxl_text_job(scale, encoders, work, ids_pairs):
    """SDXL's text encoders (1: CLIP-L, 2: OpenCLIP-bigG with projection), exported as optimum does for SDXL
    (output_hidden_states: hidden_states.0..L after the pooled / projected output). ids_pairs[which]: the
    [2, 77] ids of ("", prompt) from that encoder's tokenizer (tokenizer_2 pads with "!")."""
    t0 = time.time()
    files, refs, cfgs, params = {}, {}, {}, {}
    for which in encoders:
        cfg = A.sdxl_text_config(which, scale)
        model = A.build_sdxl_text(cfg, A.seed_of("sdxl", f"text_encoder_{which}", scale))
        ids = torch.tensor(ids_pairs[which], dtype=torch.int64)
        L = cfg["num_hidden_layers"]
        first = ["text_embeds", "last_hidden_state"] if which == 2 else ["last_hidden_state", "pooler_output"]
        names = first + [f"hidden_states.{k}" for k in range(L + 1)]
        seq = {0: "batch_size", 1: "sequence_length"}
        dyn = {"input_ids": seq, "text_embeds": {0: "batch_size"}, "pooler_output": {0: "batch_size"}}
        dyn.update({n: seq for n in names if n not in dyn})
        folder = os.path.join(work, f"sdxl-text_encoder_{which}")
        path = os.path.join(folder, "model.onnx")
        wrapped = A.ClipHiddenStates(model)
        T.export(wrapped, (ids,), path, ["input_ids"], names, dyn)
        if T.uses_external_data(path):  # bigG at full scale: 2.8 GB
            T.merge_external(path, "model.onnx_data")
        with torch.no_grad():
            outs = wrapped(ids)
        files[which] = folder
        refs[which] = dict({"input_ids": ids.numpy()}, **{n: _np(o) for n, o in zip(names, outs)})
        cfgs[which] = cfg
        params[which] = A.count_params(model)
    return {"files": files, "refs": refs, "config": cfgs, "params": params, "seconds": time.time() - t0}


def _decoder(vae):
    return A.M.VaeDecoderExport(vae)


def run_job(job):
    """Entry point for worker processes: job = (kind, kwargs)."""
    import warnings

    # torch 1.13's exporter warns about its own internals (shape inference of prim::Constant, Slice folding)
    # on every UNet; the checks that matter are run on the written files instead
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1 if os.environ.get("TEST_MODELS_WORKER") else 2)
    kind, kw = job
    return {"text": text_job, "unet": unet_job, "vae": vae_job, "sdxl_unet": sdxl_unet_job,
            "sdxl_text": sdxl_text_job}[kind](**kw)
