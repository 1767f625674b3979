"""The folder layouts: what each one reproduces, which exported components it takes, and how its folder is
assembled (configs, tokenizer, scheduler, model_index.json, references). Facts and their sources are in
README.md; the comments here say why a layout differs from its neighbours."""
import json
import os
import shutil
import zipfile

import numpy as np
import onnx

import arch as A
import clip_bpe as C
import exporters as E
import onnx_tools as T
from onnx import TensorProto

# The real CLIP BPE files, shipped with the engine (packages/diffusion/assets/clip-tokenizer, MIT, OpenAI).
CLIP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packages", "diffusion", "assets", "clip-tokenizer")
PROMPT = "a photo of an astronaut riding a horse on mars"
TOKENIZER_CASES = [
    "",
    PROMPT,
    "A Photo of a CAT!!",
    "  multiple   spaces\tand\nnewlines  ",
    "(masterpiece:1.2), best quality, 1girl, it's a dog's toy",
    "caf\u00e9 na\u00efve",
    " ".join(["pneumonoultramicroscopic volcano"] * 30),  # > 75 tokens: cut to [BOS] + 75 + [EOS]
]

# kind "sd": a runnable SD-1.x/2.x folder with references; "sdxl": a runnable SDXL folder with references (the
# engine refuses it until it supports SDXL); the others are refused by the engine (error tests).
LAYOUTS = {
    "sd15-optimum": dict(kind="sd", family="sd15", unet="sd15", exporter="optimum", pipeline="StableDiffusionPipeline",
                         scheduler="pndm", desc="optimum-cli >= 1.24 export of SD-1.5 (float scalar timestep, latent_parameters)"),
    "sd15-optimum-old": dict(kind="sd", family="sd15", unet="sd15", exporter="optimum-old",
                             pipeline="StableDiffusionPipeline", scheduler="pndm",
                             desc="optimum-cli <= 1.22 export (int64 [steps] timestep, VAE encoder samples in the graph)"),
    "sd15-diffusers-script": dict(kind="sd", family="sd15", unet="sd15", exporter="script",
                                  pipeline="OnnxStableDiffusionPipeline", scheduler="pndm-0.6",
                                  desc="diffusers' convert_stable_diffusion_checkpoint_to_onnx.py (int32 ids, weights.pb, CRLF tokenizer)"),
    "sd15-fp16": dict(kind="sd", family="sd15", unet="sd15", exporter="optimum", fp16=True,
                      pipeline="StableDiffusionPipeline", scheduler="pndm",
                      desc="sd15-optimum with float16 weights and float16 inputs/outputs"),
    "sd21-v": dict(kind="sd", family="sd21", unet="sd21", exporter="optimum", pipeline="StableDiffusionPipeline",
                   scheduler="ddim-v", desc="SD-2.1-768-v: OpenCLIP-H text encoder, linear projections, per-block heads, v-prediction"),
    "sd-turbo": dict(kind="sd", family="sd21", unet="sd21", exporter="optimum", pipeline="StableDiffusionPipeline",
                     scheduler="turbo", desc="SD-Turbo: SD-2.1 architecture, EulerDiscrete trailing, epsilon"),
    "sd15-zero-snr": dict(kind="sd", family="sd15", unet="sd15", exporter="optimum", pipeline="StableDiffusionPipeline",
                          scheduler="zero-snr", desc="sd15-optimum with a zero-terminal-SNR v-prediction scheduler config"),
    "lcm": dict(kind="sd", family="sd15", unet="sd15-lcm", exporter="optimum",
                pipeline="LatentConsistencyModelPipeline", scheduler="lcm",
                desc="LCM-distilled SD-1.5: UNet input timestep_cond [B,256], LCMScheduler"),
    "sd15-inpaint": dict(kind="sd", family="sd15", unet="sd15-inpaint", exporter="optimum",
                         pipeline="StableDiffusionInpaintPipeline", scheduler="pndm",
                         desc="SD-1.5 inpainting: 9-channel UNet sample"),
    "olive-fused": dict(kind="olive", desc="Olive/ORT-transformers optimized: com.microsoft NhwcConv + GroupNorm, float16 I/O (refused)"),
    "sdxl": dict(kind="sdxl", unet="sdxl", encoders=(1, 2), pipeline="StableDiffusionXLPipeline",
                 desc="optimum-cli export of SDXL base: CLIP-L + OpenCLIP-bigG (hidden_states.*), UNet text_embeds/time_ids [B,6]"),
    "sdxl-refiner": dict(kind="sdxl", unet="sdxl-refiner", encoders=(2,), pipeline="StableDiffusionXLImg2ImgPipeline",
                         desc="optimum-cli export of the SDXL refiner: text_encoder_2 only, 4-level UNet, time_ids [B,5] (aesthetic score)"),
    "sdxl-turbo": dict(kind="sdxl", unet="sdxl-turbo", encoders=(1, 2), pipeline="StableDiffusionXLPipeline",
                       scheduler="sdxl-turbo", repo="stabilityai/sdxl-turbo",
                       desc="optimum-cli export of SDXL-Turbo: SDXL base architecture, own UNet weights, EulerAncestral trailing"),
    "lcm-sdxl": dict(kind="sdxl", unet="lcm-sdxl", encoders=(1, 2), pipeline="StableDiffusionXLPipeline",
                     scheduler="lcm-sdxl",
                     desc="optimum-cli export of SDXL base with LCM-SDXL's UNet: + timestep_cond [B,256], LCMScheduler"),
    "pixart": dict(kind="pixart", desc="PixArt-alpha folder: transformer/ instead of unet/ (refused)"),
    "sd3": dict(kind="sd3", desc="SD3 folder: transformer/, text_encoder_3/ (refused)"),
    "ckpt": dict(kind="ckpt", desc="a pickled .ckpt checkpoint (magic bytes only; refused, never unpickled)"),
}


# ------------------------------------------------------------------------------------------ planning
def text_variant(exporter):
    return "script" if exporter == "script" else "optimum"


def plan_jobs(names, scale, work, tokens, genuine=False):
    """The export jobs the selected layouts need (each component exported once, shared by layouts)."""
    text = {}
    unets = set()
    vae = set()
    sdxl_text = set()
    for n in names:
        L = LAYOUTS[n]
        if L["kind"] == "sd":
            text.setdefault(L["family"], set()).add(text_variant(L["exporter"]))
            unets.add((L["unet"], L["exporter"]))
            vae.add("enc-" + L["exporter"])
            vae.add("dec-script" if L["exporter"] == "script" else "dec-optimum")
        elif L["kind"] == "olive":
            text.setdefault("sd15", set()).add("optimum")
            vae.update(["enc-optimum", "dec-optimum"])
        elif L["kind"] == "sdxl":
            vae.update(["enc-optimum", "dec-optimum"])
            unets.add((L["unet"], "optimum"))
            sdxl_text.update(L["encoders"])
        elif L["kind"] == "pixart":
            vae.update(["enc-optimum", "dec-optimum"])
    jobs = {}
    for arch in ("sdxl", "sdxl-refiner", *A.SDXL_DISTILLED):
        if (arch, "optimum") in unets:
            unets.discard((arch, "optimum"))
            jobs[("unet", arch)] = ("sdxl_unet", dict(arch=arch, scale=scale, work=work, genuine=genuine))
    if sdxl_text:
        jobs[("sdxl-text",)] = ("sdxl_text", dict(scale=scale, encoders=sorted(sdxl_text), work=work,
                                                  ids_pairs={1: tokens["sd15"]["pair"], 2: tokens["sd21"]["pair"]}))
    for family in ("sd15", "sd21"):
        wanted = sorted(u for u in unets if E.UNET_ARCH[u[0]][0] == family)
        if wanted:
            jobs[("unet", family)] = ("unet", dict(family=family, scale=scale, wanted=wanted, work=work, genuine=genuine))
    for family, variants in sorted(text.items()):
        t = tokens[family]
        jobs[("text", family)] = ("text", dict(family=family, scale=scale, variants=sorted(variants), work=work,
                                                ids_pair=t["pair"], ti_position=t["ti_position"]))
    if vae:
        jobs[("vae",)] = ("vae", dict(scale=scale, variants=sorted(vae), work=work))
    return jobs


def tokenizer_for(family, scale):
    """(vocab, merges, pad_token): CI's truncated vocabulary or the real one; SD-2.x (OpenCLIP) pads with "!"."""
    vocab, merges = C.load_clip(CLIP_DIR)
    if scale == "ci":
        vocab, merges = C.truncate(vocab, merges, A.CI_MERGES)
    return vocab, merges, "!" if family == "sd21" else C.EOS


def prompt_tokens(scale):
    out = {}
    for family in ("sd15", "sd21"):
        vocab, merges, pad = tokenizer_for(family, scale)
        bpe = C.ClipBpe(vocab, merges, pad)
        pair = [bpe.encode(""), bpe.encode(PROMPT)]
        ids = pair[1]
        n = ids.index(bpe.eos)
        # a textual-inversion position whose token occurs once, so "replace that id's embedding row" and
        # "replace that position's embedding" are the same operation
        pos = next(p for p in range(1, n) if ids[:n].count(ids[p]) == 1)
        out[family] = {"pair": pair, "ti_position": pos,
                       "cases": [{"text": t, "ids": bpe.encode(t)} for t in TOKENIZER_CASES],
                       "bos": bpe.bos, "eos": bpe.eos, "pad": bpe.pad, "vocab_size": len(vocab)}
    return out


# ------------------------------------------------------------------------------------------ small writers
def dump(obj, path, crlf=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = json.dumps(obj, indent=2) + "\n"
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text.replace("\n", "\r\n") if crlf else text)


def copy_component(src, dst):
    os.makedirs(dst, exist_ok=True)
    for f in sorted(os.listdir(src)):
        shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))


def write_tokenizer(folder, family, scale, crlf=False, name=None):
    vocab, merges, pad = tokenizer_for(family, scale)
    name = name or ("stabilityai/stable-diffusion-2-1" if family == "sd21" else "openai/clip-vit-large-patch14")
    C.write_tokenizer(folder, vocab, merges, pad_token=pad, crlf=crlf, name_or_path=name)
    if scale == "full" and not crlf:
        # full scale ships CLIP's own vocab.json / merges.txt bytes (the rewrite above has the same content)
        for f in ("vocab.json", "merges.txt"):
            shutil.copyfile(os.path.join(CLIP_DIR, f), os.path.join(folder, f))


FEATURE_EXTRACTOR = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}
# diffusers 0.6-era (the script's) preprocessor_config.json
FEATURE_EXTRACTOR_OLD = {
    "crop_size": 224,
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "size": 224,
}

_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
          "trained_betas": None}


def scheduler_config(kind):
    v = A.DIFFUSERS_VERSION
    if kind == "pndm":  # stable-diffusion-v1-5's, re-saved by a current diffusers (optimum-cli)
        return dict(_class_name="PNDMScheduler", _diffusers_version=v, **_BETAS, clip_sample=False,
                    prediction_type="epsilon", set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1,
                    timestep_spacing="leading")
    if kind == "pndm-0.6":  # as diffusers 0.6 wrote it: no prediction_type / timestep_spacing keys (defaults)
        return {"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
                "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
                "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
                "clip_sample": False}
    ddim = dict(_class_name="DDIMScheduler", _diffusers_version=v, **_BETAS, clip_sample=False,
                clip_sample_range=1.0, dynamic_thresholding_ratio=0.995, sample_max_value=1.0, set_alpha_to_one=False,
                skip_prk_steps=True, steps_offset=1, thresholding=False)
    if kind == "ddim-v":  # stable-diffusion-2-1 (768-v) ships a DDIMScheduler with v_prediction
        return dict(ddim, prediction_type="v_prediction", rescale_betas_zero_snr=False, timestep_spacing="leading")
    if kind == "zero-snr":  # zero-terminal-SNR fine-tunes (Lin et al. 2023): rescaled betas, trailing, v
        return dict(ddim, prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing")
    if kind == "turbo":  # stabilityai/sd-turbo
        return dict(_class_name="EulerDiscreteScheduler", _diffusers_version="0.24.0.dev0", **_BETAS,
                    clip_sample=False, interpolation_type="linear", prediction_type="epsilon", sample_max_value=1.0,
                    set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, timestep_spacing="trailing",
                    use_karras_sigmas=False)
    if kind == "lcm":  # SimianLuo/LCM_Dreamshaper_v7
        return dict(_class_name="LCMScheduler", _diffusers_version="0.22.0.dev0", **_BETAS, clip_sample=False,
                    clip_sample_range=1.0, dynamic_thresholding_ratio=0.995, original_inference_steps=50,
                    prediction_type="epsilon", rescale_betas_zero_snr=False, sample_max_value=1.0,
                    set_alpha_to_one=True, steps_offset=1, thresholding=False, timestep_scaling=10.0,
                    timestep_spacing="leading")
    if kind == "sdxl":
        return dict(_class_name="EulerDiscreteScheduler", _diffusers_version="0.19.0.dev0", **_BETAS,
                    clip_sample=False, interpolation_type="linear", prediction_type="epsilon", sample_max_value=1.0,
                    set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, timestep_spacing="leading",
                    use_karras_sigmas=False)
    if kind == "sdxl-turbo":  # stabilityai/sdxl-turbo: SDXL's keys, euler ancestral, trailing [recalled]
        return dict(scheduler_config("sdxl"), _class_name="EulerAncestralDiscreteScheduler",
                    _diffusers_version="0.24.0.dev0", timestep_spacing="trailing")
    if kind == "lcm-sdxl":
        # latent-consistency/lcm-sdxl ships a UNet only; its model card builds the pipeline from SDXL base with
        # LCMScheduler.from_config(pipe.scheduler.config) [recalled]. from_config keeps the Euler config's values
        # where LCMScheduler has the key (set_alpha_to_one false, steps_offset 1, leading), LCMScheduler's
        # defaults for the rest, and the unused keys ride along; save_pretrained writes the union
        return dict(scheduler_config("sdxl"), _class_name="LCMScheduler", _diffusers_version=v, clip_sample_range=1.0,
                    dynamic_thresholding_ratio=0.995, original_inference_steps=50, rescale_betas_zero_snr=False,
                    thresholding=False, timestep_scaling=10.0)
    if kind == "pixart":
        return dict(_class_name="DPMSolverMultistepScheduler", _diffusers_version="0.22.0.dev0", **_BETAS,
                    algorithm_type="dpmsolver++", prediction_type="epsilon", solver_order=2, solver_type="midpoint",
                    steps_offset=0, thresholding=False, timestep_spacing="linspace", use_karras_sigmas=False)
    if kind == "sd3":
        return {"_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.29.0.dev0",
                "num_train_timesteps": 1000, "shift": 3.0}
    raise ValueError(kind)


def model_index(L):
    """model_index.json as each exporter leaves it. optimum-cli saves the *source* diffusers pipeline's config
    (model.save_config(output)): class StableDiffusionPipeline (or the LCM / inpaint class), components listed
    under their diffusers names (`vae`, not vae_encoder/vae_decoder) and a safety_checker entry although optimum
    exports no safety checker. diffusers' script saves an OnnxStableDiffusionPipeline of OnnxRuntimeModels."""
    v = A.DIFFUSERS_VERSION
    if L["exporter"] == "script":
        return {"_class_name": "OnnxStableDiffusionPipeline", "_diffusers_version": "0.6.0",
                "feature_extractor": ["transformers", "CLIPFeatureExtractor"], "requires_safety_checker": True,
                "safety_checker": ["diffusers", "OnnxRuntimeModel"], "scheduler": ["diffusers", "PNDMScheduler"],
                "text_encoder": ["diffusers", "OnnxRuntimeModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
                "unet": ["diffusers", "OnnxRuntimeModel"], "vae_decoder": ["diffusers", "OnnxRuntimeModel"],
                "vae_encoder": ["diffusers", "OnnxRuntimeModel"]}
    sched = scheduler_config(L["scheduler"])["_class_name"]
    if L["family"] == "sd21":
        safety, fe, req = [None, None], (["transformers", "CLIPImageProcessor"] if L["scheduler"] != "turbo" else [None, None]), False
    elif L["scheduler"] == "zero-snr":
        safety, fe, req = [None, None], [None, None], False
    else:
        safety, fe, req = ["stable_diffusion", "StableDiffusionSafetyChecker"], ["transformers", "CLIPImageProcessor"], True
    return {"_class_name": L["pipeline"], "_diffusers_version": "0.30.3" if L["exporter"] == "optimum-old" else v,
            "feature_extractor": fe, "image_encoder": [None, None], "requires_safety_checker": req,
            "safety_checker": safety, "scheduler": ["diffusers", sched], "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"]}


# ------------------------------------------------------------------------------------------ references
class References:
    """NAME/reference/: one little-endian float32 .bin per float tensor, integer tensors inline, and
    reference.json describing every tensor and every call (see README.md, "Reference format")."""

    def __init__(self, folder):
        self.dir = os.path.join(folder, "reference")
        os.makedirs(self.dir, exist_ok=True)
        self.tensors = {}
        self.calls = []

    def tensor(self, name, arr, onnx_dtype=None, **meta):
        arr = np.asarray(arr)
        e = {"shape": list(arr.shape)}
        if arr.dtype.kind == "f":
            data = arr.astype("<f4")
            fname = name + ".bin"
            with open(os.path.join(self.dir, fname), "wb") as f:
                f.write(data.tobytes())
            e.update(dtype="float32", file=fname)
            if data.size <= 16:
                e["values"] = [float(x) for x in data.reshape(-1)]
        else:
            e.update(dtype=str(arr.dtype), values=[int(x) for x in arr.reshape(-1)])
        e["onnx_dtype"] = onnx_dtype or e["dtype"]
        e.update(meta)
        self.tensors[name] = e
        return name

    def call(self, **c):
        self.calls.append(c)

    def save(self, meta):
        dump(dict(meta, tensors=self.tensors, calls=self.calls), os.path.join(self.dir, "reference.json"))


def write_references(folder, name, L, scale, results, tokens, comp_paths):
    fam = L["family"]
    fp16 = bool(L.get("fp16"))
    fdt = "float16" if fp16 else "float32"
    R = References(folder)
    tok = tokens[fam]
    te = results[("text", fam)]["refs"]
    ids_dtype = "int32" if L["exporter"] == "script" else "int64"
    te_model = onnx.load(comp_paths["text_encoder"], load_external_data=False)

    # text encoder: the CFG pair ("" and the prompt) through the graph's own outputs
    R.tensor("text_encoder.input_ids", np.array(tok["pair"], np.int64), ids_dtype, texts=["", PROMPT])
    R.tensor("text_encoder.last_hidden_state", te["last_hidden_state"], fdt)
    R.tensor("text_encoder.pooler_output", te["pooler_output"], fdt,
             note="final-layer-normed state at argmax(input_ids) (the EOS, the highest id)")
    R.call(name="text_encoder", component="text_encoder", inputs={"input_ids": "text_encoder.input_ids"},
           outputs={"last_hidden_state": "text_encoder.last_hidden_state", "pooler_output": "text_encoder.pooler_output"})

    # every layer's output, found in the graph by scope (the tensor a clip-skip derivation must expose)
    R.tensor("text_encoder.prompt_ids", np.array(tok["pair"][1:], np.int64), ids_dtype, texts=[PROMPT])
    nl = len(te["hidden_states"]) - 1
    inter = {}
    for k, hs in enumerate(te["hidden_states"]):
        scope = "/text_model/embeddings/" if k == 0 else f"/text_model/encoder/layers.{k - 1}/"
        bound = T.scope_boundary(te_model, scope)
        inter[f"hidden_states.{k}"] = R.tensor(
            f"text_encoder.hidden_states.{k}", hs, fdt, scope=scope.rstrip("/"),
            onnx_tensor=bound[0] if len(bound) == 1 else bound,
            note="embeddings (token + position)" if k == 0 else f"output of encoder layer {k} of {nl} (layers.{k - 1}), before the final layer norm")
    R.tensor("text_encoder.prompt_last_hidden_state", te["last_hidden_state_1"], fdt)
    R.tensor("text_encoder.clip_skip_2", te["clip_skip_2"], fdt,
             note="final_layer_norm(hidden_states[-2]): ComfyUI's SD-1.x clip skip 2 (CLIPSetLastLayer -2)")
    R.call(name="text_encoder.hidden_states", component="text_encoder",
           inputs={"input_ids": "text_encoder.prompt_ids"},
           outputs={"last_hidden_state": "text_encoder.prompt_last_hidden_state"},
           intermediates=inter, derived={"clip_skip_2": "text_encoder.clip_skip_2"},
           final_layer_norm_scope="/text_model/final_layer_norm")

    # textual inversion: one position's token embedding replaced by a given vector
    p = tok["ti_position"]
    R.tensor("text_encoder.ti_vector", te["ti_vector"], fdt)
    R.tensor("text_encoder.ti_last_hidden_state", te["ti_last_hidden_state"], fdt)
    R.call(name="text_encoder.textual_inversion", component="text_encoder",
           inputs={"input_ids": "text_encoder.prompt_ids"}, outputs={"last_hidden_state": "text_encoder.ti_last_hidden_state"},
           replace_token_embedding={"position": p, "token_id": tok["pair"][1][p], "vector": "text_encoder.ti_vector"},
           note="token embedding at `position` replaced by `vector` before the position embedding is added; the "
                "id occurs once in the prompt, so replacing row token_id of the embedding table is equivalent")

    # UNet
    u = results[("unet", L["unet"], L["exporter"])]["refs"]
    ts = u["timestep"]
    ts_dtype = "int64" if L["exporter"] == "optimum-old" else fdt
    ins = {"sample": R.tensor("unet.sample", u["sample"], fdt),
           "timestep": R.tensor("unet.timestep", ts.astype(np.float32) if ts.dtype.kind == "f" else ts, ts_dtype),
           "encoder_hidden_states": R.tensor("unet.encoder_hidden_states", u["encoder_hidden_states"], fdt)}
    if "timestep_cond" in u:
        ins["timestep_cond"] = R.tensor("unet.timestep_cond", u["timestep_cond"], fdt,
                                        guidance_scale=u["guidance_scale"],
                                        note="LCM guidance embedding of (w - 1) * 1000, 256 dims, [sin | cos], per item")
    R.tensor("unet.out_sample", u["out_sample"], fdt)
    R.call(name="unet", component="unet", inputs=ins, outputs={"out_sample": "unet.out_sample"})

    # VAE
    v = results[("vae",)]["refs"]
    R.tensor("vae_decoder.latent_sample", v["latent"], fdt, note="unscaled latents (the decoder's own input)")
    R.tensor("vae_decoder.sample", v["decoded"], fdt)
    R.call(name="vae_decoder", component="vae_decoder", inputs={"latent_sample": "vae_decoder.latent_sample"},
           outputs={"sample": "vae_decoder.sample"})
    R.tensor("vae_encoder.sample", v["image"], fdt, note="pixels in [-1, 1]")
    enc_model = onnx.load(comp_paths["vae_encoder"], load_external_data=False)
    qc = T.scope_boundary(enc_model, "/quant_conv/")
    R.tensor("vae_encoder.parameters", v["parameters"], fdt, onnx_tensor=qc[0] if len(qc) == 1 else qc,
             note="quant_conv output: mean (channels 0-3) and logvar (4-7), unscaled")
    R.tensor("vae_encoder.mean", v["mean"], fdt)
    R.tensor("vae_encoder.logvar", v["logvar"], fdt, note="before diffusers' clamp to [-30, 20]")
    if L["exporter"] == "optimum":
        R.call(name="vae_encoder", component="vae_encoder", inputs={"sample": "vae_encoder.sample"},
               outputs={"latent_parameters": "vae_encoder.parameters"},
               derived={"mean": "vae_encoder.mean", "logvar": "vae_encoder.logvar"})
    else:
        R.call(name="vae_encoder", component="vae_encoder", inputs={"sample": "vae_encoder.sample"},
               outputs={}, random_outputs={"latent_sample": "mean + exp(0.5 * clamp(logvar, -30, 20)) * N(0, 1), drawn by RandomNormalLike"},
               intermediates={"parameters": "vae_encoder.parameters"},
               derived={"mean": "vae_encoder.mean", "logvar": "vae_encoder.logvar"},
               note="the graph samples; cut it at intermediates.parameters.onnx_tensor for a deterministic mean")

    R.save({
        "format": "gategraph-test-models/reference/1",
        "layout": name,
        "scale": scale,
        "seed": int(os.environ.get("TEST_MODELS_SEED", "0")),
        "byte_order": "little",
        "file_dtype": "float32",
        "computed_in": "float32 PyTorch on the float32 weights" + (" (before the float16 cast)" if fp16 else ""),
        "tolerance": {"abs": 1e-2} if fp16 else {"abs": 1e-4, "rel": 1e-4},
        "tokenizer": {"folder": "tokenizer", "bos_id": tok["bos"], "eos_id": tok["eos"], "pad_id": tok["pad"],
                      "vocab_size": tok["vocab_size"], "max_length": C.MAX_LENGTH, "cases": tok["cases"],
                      "note": "ids as transformers' CLIPTokenizer(padding='max_length', max_length=77, truncation=True)"},
    })


# ------------------------------------------------------------------------------------------ assembly
def _fp16_file(src_dir, dst_dir, keep=()):
    src = os.path.join(src_dir, "model.onnx")
    types = T.float_types(onnx.load(src, load_external_data=False))  # full-scale UNet: types without the 3.4 GB
    m = T.to_fp16(onnx.load(src), keep, types)
    os.makedirs(dst_dir, exist_ok=True)
    path = os.path.join(dst_dir, "model.onnx")
    if m.ByteSize() > 2_000_000_000:
        T.save_with_external(m, path, "model.onnx_data")
    else:
        onnx.save_model(m, path)


def assemble_sd(folder, name, L, scale, results, tokens):
    fam, exp = L["family"], L["exporter"]
    fp16 = bool(L.get("fp16"))
    script = exp == "script"
    tv = text_variant(exp)
    te = results[("text", fam)]
    un = results[("unet", L["unet"], exp)]
    va = results[("vae",)]
    enc_v = "enc-" + exp
    dec_v = "dec-script" if script else "dec-optimum"
    comps = {"text_encoder": te["files"][tv], "unet": un["files"][exp],
             "vae_encoder": va["files"][enc_v], "vae_decoder": va["files"][dec_v]}
    for c, src in comps.items():
        dst = os.path.join(folder, c)
        if fp16:
            _fp16_file(src, dst, ("/time_proj/",) if c == "unet" else ())
        else:
            copy_component(src, dst)
    if not script:  # the script writes no per-component config.json
        tcfg = dict(te["config"], torch_dtype="float16" if fp16 else "float32")
        if exp == "optimum":
            tcfg["export_model_type"] = "clip-text"  # optimum >= 1.23 sets it on the config before saving it
        dump(tcfg, os.path.join(folder, "text_encoder", "config.json"))
        ucfg = dict(un["config"])
        if L["scheduler"] == "turbo":
            ucfg["sample_size"] = 64 if scale == "full" else ucfg["sample_size"]  # SD-Turbo is 512 px
        dump(ucfg, os.path.join(folder, "unet", "config.json"))
        vcfg = dict(va["config"])
        if fam == "sd21" and L["scheduler"] != "turbo" and scale == "full":
            vcfg["sample_size"] = 768
        dump(vcfg, os.path.join(folder, "vae_encoder", "config.json"))
        dump(vcfg, os.path.join(folder, "vae_decoder", "config.json"))
    write_tokenizer(os.path.join(folder, "tokenizer"), fam, scale, crlf=script)
    dump(scheduler_config(L["scheduler"]), os.path.join(folder, "scheduler", "scheduler_config.json"))
    mi = model_index(L)
    dump(mi, os.path.join(folder, "model_index.json"))
    if mi.get("feature_extractor", [None])[0] is not None:
        dump(FEATURE_EXTRACTOR_OLD if script else FEATURE_EXTRACTOR,
             os.path.join(folder, "feature_extractor", "preprocessor_config.json"))
    if script:
        os.makedirs(os.path.join(folder, "safety_checker"), exist_ok=True)
        onnx.save_model(T.safety_checker_model(), os.path.join(folder, "safety_checker", "model.onnx"))
    write_references(folder, name, L, scale, results, tokens,
                     {c: os.path.join(folder, c, "model.onnx") for c in comps})


def assemble_olive(folder, scale, results):
    """A folder as Olive's Stable Diffusion example leaves it: diffusers' OnnxStableDiffusionPipeline with
    float16 components; the UNet carries the fused com.microsoft ops the CPU provider cannot run."""
    te, va = results[("text", "sd15")], results[("vae",)]
    _fp16_file(te["files"]["optimum"], os.path.join(folder, "text_encoder"))
    _fp16_file(va["files"]["enc-optimum"], os.path.join(folder, "vae_encoder"))
    _fp16_file(va["files"]["dec-optimum"], os.path.join(folder, "vae_decoder"))
    os.makedirs(os.path.join(folder, "unet"), exist_ok=True)
    onnx.save_model(T.olive_unet_model(), os.path.join(folder, "unet", "model.onnx"))
    write_tokenizer(os.path.join(folder, "tokenizer"), "sd15", scale)
    dump(scheduler_config("pndm"), os.path.join(folder, "scheduler", "scheduler_config.json"))
    dump({"_class_name": "OnnxStableDiffusionPipeline", "_diffusers_version": "0.17.1",
          "feature_extractor": ["transformers", "CLIPImageProcessor"], "requires_safety_checker": False,
          "safety_checker": [None, None], "scheduler": ["diffusers", "PNDMScheduler"],
          "text_encoder": ["diffusers", "OnnxRuntimeModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
          "unet": ["diffusers", "OnnxRuntimeModel"], "vae_decoder": ["diffusers", "OnnxRuntimeModel"],
          "vae_encoder": ["diffusers", "OnnxRuntimeModel"]}, os.path.join(folder, "model_index.json"))
    dump(FEATURE_EXTRACTOR, os.path.join(folder, "feature_extractor", "preprocessor_config.json"))


F32, I64 = TensorProto.FLOAT, TensorProto.INT64


def _text_stub(hidden, layers, first="pooler_output", first_dims=None):
    """A text encoder's I/O as optimum declares it with output_hidden_states (SDXL, SD3): hidden_states.0..L."""
    b, s = ("input_ids", 0, "batch_size"), ("input_ids", 1, "sequence_length")
    outs = [("last_hidden_state", F32, [b, s, hidden]), (first, F32, first_dims or [b, hidden])]
    if first == "text_embeds":
        outs = [outs[1], outs[0]]
    outs += [(f"hidden_states.{i}", F32, [b, s, hidden]) for i in range(layers + 1)]
    return T.stub_model([("input_ids", I64, ["batch_size", "sequence_length"])], outs)


def _save(model, folder, config=None):
    os.makedirs(folder, exist_ok=True)
    onnx.save_model(model, os.path.join(folder, "model.onnx"))
    if config is not None:
        dump(config, os.path.join(folder, "config.json"))


def _copy_vae(folder, results, scale, **cfg):
    va = results[("vae",)]
    vcfg = dict(va["config"], **cfg)
    for c, v in (("vae_encoder", "enc-optimum"), ("vae_decoder", "dec-optimum")):
        copy_component(va["files"][v], os.path.join(folder, c))
        dump(vcfg, os.path.join(folder, c, "config.json"))


def sdxl_model_index(L):
    """model_index.json of stabilityai/stable-diffusion-xl-base-1.0 / -refiner-1.0 [recalled], as optimum-cli
    re-saves it with a current diffusers (the source pipeline's config: `vae`, not vae_encoder/vae_decoder; the
    keys a current diffusers adds, feature_extractor / image_encoder, null). The refiner has no text_encoder /
    tokenizer and requires_aesthetics_score true."""
    refiner = L["unet"] == "sdxl-refiner"
    sched = scheduler_config(L.get("scheduler", "sdxl"))["_class_name"]
    mi = {"_class_name": L["pipeline"], "_diffusers_version": A.DIFFUSERS_VERSION, "add_watermarker": None,
          "feature_extractor": [None, None], "force_zeros_for_empty_prompt": not refiner,
          "image_encoder": [None, None], "scheduler": ["diffusers", sched],
          "text_encoder": [None, None] if refiner else ["transformers", "CLIPTextModel"],
          "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
          "tokenizer": [None, None] if refiner else ["transformers", "CLIPTokenizer"],
          "tokenizer_2": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
          "vae": ["diffusers", "AutoencoderKL"]}
    if refiner:
        mi["requires_aesthetics_score"] = True
    return dict(sorted(mi.items()))


def _tokenizer_entry(tok, folder):
    return {"folder": folder, "bos_id": tok["bos"], "eos_id": tok["eos"], "pad_id": tok["pad"],
            "vocab_size": tok["vocab_size"], "max_length": C.MAX_LENGTH, "cases": tok["cases"],
            "note": "ids as transformers' CLIPTokenizer(padding='max_length', max_length=77, truncation=True)"}


def assemble_sdxl(folder, name, L, scale, results, tokens):
    """An optimum-cli SDXL folder (base or refiner) with references; see README.md, layouts sdxl / sdxl-refiner."""
    te = results[("sdxl-text",)]
    un = results[("unet", L["unet"], "optimum")]
    va = results[("vae",)]
    sdxl_name = L.get("repo") or "stabilityai/stable-diffusion-xl-" + ("refiner-1.0" if L["unet"] == "sdxl-refiner" else "base-1.0")
    for which in L["encoders"]:
        comp = "text_encoder_2" if which == 2 else "text_encoder"
        copy_component(te["files"][which], os.path.join(folder, comp))
        # optimum sets output_hidden_states on both SDXL encoders and export_model_type before saving the
        # configs [recalled: optimum exporters/utils.py _get_submodels_for_export_diffusion]
        cfg = dict(te["config"][which], output_hidden_states=True,
                   export_model_type="clip-text-with-projection" if which == 2 else "clip-text")
        if "repo" in L:
            cfg["_name_or_path"] = f"{sdxl_name}/{comp}"
        dump(dict(sorted(cfg.items())), os.path.join(folder, comp, "config.json"))
        tok = "tokenizer_2" if which == 2 else "tokenizer"
        write_tokenizer(os.path.join(folder, tok), "sd21" if which == 2 else "sd15", scale,
                        name=f"{sdxl_name}/{tok}")
    copy_component(un["files"]["optimum"], os.path.join(folder, "unet"))
    dump(un["config"], os.path.join(folder, "unet", "config.json"))
    # SDXL's VAE: SD's architecture, scaling_factor 0.13025, force_upcast (it overflows in float16)
    vcfg = dict(va["config"], _diffusers_version="0.20.0.dev0", scaling_factor=0.13025, force_upcast=True,
                sample_size=1024 if scale == "full" else va["config"]["sample_size"])
    for c, v in (("vae_encoder", "enc-optimum"), ("vae_decoder", "dec-optimum")):
        copy_component(va["files"][v], os.path.join(folder, c))
        dump(vcfg, os.path.join(folder, c, "config.json"))
    dump(scheduler_config(L.get("scheduler", "sdxl")), os.path.join(folder, "scheduler", "scheduler_config.json"))
    dump(sdxl_model_index(L), os.path.join(folder, "model_index.json"))
    write_sdxl_references(folder, name, L, scale, results, tokens)


def write_sdxl_references(folder, name, L, scale, results, tokens):
    R = References(folder)
    te = results[("sdxl-text",)]
    hs = {}
    for which in L["encoders"]:
        comp = "text_encoder_2" if which == 2 else "text_encoder"
        r = te["refs"][which]
        nl = te["config"][which]["num_hidden_layers"]
        R.tensor(f"{comp}.input_ids", r["input_ids"], "int64", texts=["", PROMPT],
                 tokenizer="tokenizer_2" if which == 2 else "tokenizer")
        outs = {}
        for k, v in r.items():
            if k == "input_ids":
                continue
            note = {"pooler_output": "final-layer-normed state at argmax(input_ids) (the EOS, the highest id)",
                    "text_embeds": "pooled output (final-layer-normed state at argmax(input_ids)) through "
                                   "text_projection (no bias)",
                    "hidden_states.0": "embeddings (token + position)"}.get(k)
            if k.startswith("hidden_states.") and k != "hidden_states.0":
                i = int(k.split(".")[1])
                note = f"output of encoder layer {i} of {nl} (layers.{i - 1}), before the final layer norm"
            outs[k] = R.tensor(f"{comp}.{k}", v, "float32", **({"note": note} if note else {}))
        R.call(name=comp, component=comp, inputs={"input_ids": f"{comp}.input_ids"}, outputs=outs)
        hs[which] = r[f"hidden_states.{nl - 1}"]
    # what diffusers' StableDiffusionXLPipeline.encode_prompt (and ComfyUI's SDXL CLIP) makes of them: each
    # encoder's penultimate hidden state (hidden_states[-2], no final layer norm), concatenated on features;
    # the pooled prompt embedding is text_encoder_2's text_embeds
    emb = np.concatenate([hs[w] for w in L["encoders"]], axis=-1)
    R.tensor("conditioning.prompt_embeds", emb, "float32",
             note="concat(" + ", ".join(("text_encoder_2" if w == 2 else "text_encoder") + ".hidden_states[-2]"
                                       for w in L["encoders"]) + ") on the last axis: the UNet's encoder_hidden_states")
    conditioning = {"prompt_embeds": "conditioning.prompt_embeds", "pooled_prompt_embeds": "text_encoder_2.text_embeds"}

    u = results[("unet", L["unet"], "optimum")]["refs"]
    ins = {"sample": R.tensor("unet.sample", u["sample"], "float32"),
           "timestep": R.tensor("unet.timestep", u["timestep"], "float32"),
           "encoder_hidden_states": R.tensor("unet.encoder_hidden_states", u["encoder_hidden_states"], "float32",
                                             note="seeded normal, not the text encoders' output"),
           "text_embeds": R.tensor("unet.text_embeds", u["text_embeds"], "float32", note="seeded normal"),
           "time_ids": R.tensor("unet.time_ids", u["time_ids"], "float32",
                                note="(original h, w, crop top, left, aesthetic score) per item" if L["unet"] == "sdxl-refiner"
                                else "(original h, w, crop top, left, target h, w) per item")}
    if "timestep_cond" in u:
        ins["timestep_cond"] = R.tensor("unet.timestep_cond", u["timestep_cond"], "float32",
                                        guidance_scale=u["guidance_scale"],
                                        note="LCM guidance embedding of (w - 1) * 1000, 256 dims, [sin | cos], per item")
    R.tensor("unet.out_sample", u["out_sample"], "float32")
    unet_model = onnx.load(os.path.join(folder, "unet", "model.onnx"), load_external_data=False)
    ae = T.scope_boundary(unet_model, "/add_embedding/")
    R.tensor("unet.add_embedding", u["add_embedding"], "float32", scope="/add_embedding",
             onnx_tensor=ae[0] if len(ae) == 1 else ae,
             note="add_embedding(concat(text_embeds, add_time_proj(time_ids.flatten()).reshape(B, -1))): what is "
                  "added to the time embedding")
    R.call(name="unet", component="unet", inputs=ins, outputs={"out_sample": "unet.out_sample"},
           intermediates={"add_embedding": "unet.add_embedding"})

    v = results[("vae",)]["refs"]
    R.tensor("vae_decoder.latent_sample", v["latent"], "float32", note="unscaled latents (the decoder's own input)")
    R.tensor("vae_decoder.sample", v["decoded"], "float32")
    R.call(name="vae_decoder", component="vae_decoder", inputs={"latent_sample": "vae_decoder.latent_sample"},
           outputs={"sample": "vae_decoder.sample"})
    R.tensor("vae_encoder.sample", v["image"], "float32", note="pixels in [-1, 1]")
    R.tensor("vae_encoder.parameters", v["parameters"], "float32",
             note="quant_conv output: mean (channels 0-3) and logvar (4-7), unscaled")
    R.tensor("vae_encoder.mean", v["mean"], "float32")
    R.tensor("vae_encoder.logvar", v["logvar"], "float32", note="before diffusers' clamp to [-30, 20]")
    R.call(name="vae_encoder", component="vae_encoder", inputs={"sample": "vae_encoder.sample"},
           outputs={"latent_parameters": "vae_encoder.parameters"},
           derived={"mean": "vae_encoder.mean", "logvar": "vae_encoder.logvar"})

    toks = {}
    for which in L["encoders"]:
        tname = "tokenizer_2" if which == 2 else "tokenizer"
        toks[tname] = _tokenizer_entry(tokens["sd21" if which == 2 else "sd15"], tname)
    R.save({
        "format": "gategraph-test-models/reference/1",
        "layout": name,
        "scale": scale,
        "seed": int(os.environ.get("TEST_MODELS_SEED", "0")),
        "byte_order": "little",
        "file_dtype": "float32",
        "computed_in": "float32 PyTorch on the float32 weights",
        "tolerance": {"abs": 1e-4, "rel": 1e-4},
        # the first tokenizer of the folder (tokenizer_2 in the refiner), then every tokenizer by folder name
        "tokenizer": next(iter(toks.values())),
        "tokenizers": toks,
        "conditioning": dict(conditioning, note="diffusers' StableDiffusionXLPipeline.encode_prompt for the "
                             "input_ids pair: prompt_embeds [2, 77, D1 + D2] and pooled_prompt_embeds [2, P]"),
    })


def _t5_stub():
    return T.stub_model([("input_ids", I64, ["batch_size", "sequence_length"])],
                        [("last_hidden_state", F32, [("input_ids", 0, "batch_size"), ("input_ids", 1, "sequence_length"), 4096])])


def _t5_tokenizer(folder):
    # T5's sentencepiece model (spiece.model) is binary data we do not have and detection does not need
    dump({"additional_special_tokens": [f"<extra_id_{i}>" for i in range(100)], "eos_token": "</s>",
          "model_max_length": 512, "pad_token": "<pad>", "tokenizer_class": "T5Tokenizer", "unk_token": "<unk>"},
         os.path.join(folder, "tokenizer_config.json"))


def assemble_pixart(folder, scale, results):
    b = ("hidden_states", 0, "batch_size")
    tr = T.stub_model([("hidden_states", F32, ["batch_size", 4, "height", "width"]),
                       ("encoder_hidden_states", F32, ["batch_size", "sequence_length", 4096]),
                       ("timestep", F32, ["batch_size"]),
                       ("encoder_attention_mask", I64, ["batch_size", "sequence_length"])],
                      [("out_hidden_states", F32, [b, 8, ("hidden_states", 2, "height"), ("hidden_states", 3, "width")])])
    _save(tr, os.path.join(folder, "transformer"), {"_class_name": "PixArtTransformer2DModel", "in_channels": 4,
                                                    "out_channels": 8, "sample_size": 128, "num_layers": 28,
                                                    "caption_channels": 4096, "patch_size": 2})
    _save(_t5_stub(), os.path.join(folder, "text_encoder"), {"architectures": ["T5EncoderModel"], "d_model": 4096})
    _t5_tokenizer(os.path.join(folder, "tokenizer"))
    _copy_vae(folder, results, scale)
    dump(scheduler_config("pixart"), os.path.join(folder, "scheduler", "scheduler_config.json"))
    dump({"_class_name": "PixArtAlphaPipeline", "_diffusers_version": "0.22.0.dev0",
          "scheduler": ["diffusers", "DPMSolverMultistepScheduler"], "text_encoder": ["transformers", "T5EncoderModel"],
          "tokenizer": ["transformers", "T5Tokenizer"], "transformer": ["diffusers", "PixArtTransformer2DModel"],
          "vae": ["diffusers", "AutoencoderKL"]}, os.path.join(folder, "model_index.json"))


def assemble_sd3(folder, scale):
    b = ("hidden_states", 0, "batch_size")
    tr = T.stub_model([("hidden_states", F32, ["batch_size", 16, "height", "width"]),
                       ("encoder_hidden_states", F32, ["batch_size", "sequence_length", 4096]),
                       ("pooled_projections", F32, ["batch_size", 2048]), ("timestep", F32, ["step"])],
                      [("out_hidden_states", F32, [b, 16, ("hidden_states", 2, "height"), ("hidden_states", 3, "width")])])
    _save(tr, os.path.join(folder, "transformer"), {"_class_name": "SD3Transformer2DModel", "in_channels": 16,
                                                    "joint_attention_dim": 4096, "pooled_projection_dim": 2048})
    _save(_text_stub(768, 12, "text_embeds", [("input_ids", 0, "batch_size"), 768]), os.path.join(folder, "text_encoder"),
          {"architectures": ["CLIPTextModelWithProjection"], "hidden_size": 768})
    _save(_text_stub(1280, 32, "text_embeds", [("input_ids", 0, "batch_size"), 1280]), os.path.join(folder, "text_encoder_2"),
          {"architectures": ["CLIPTextModelWithProjection"], "hidden_size": 1280})
    _save(_t5_stub(), os.path.join(folder, "text_encoder_3"), {"architectures": ["T5EncoderModel"], "d_model": 4096})
    lat = ("latent_sample", 0, "batch_size")
    _save(T.stub_model([("latent_sample", F32, ["batch_size", 16, "height_latent", "width_latent"])],
                       [("sample", F32, [lat, 3, ("latent_sample", 2, 8, "height"), ("latent_sample", 3, 8, "width")])]),
          os.path.join(folder, "vae_decoder"), {"_class_name": "AutoencoderKL", "latent_channels": 16,
                                                "scaling_factor": 1.5305, "shift_factor": 0.0609})
    write_tokenizer(os.path.join(folder, "tokenizer"), "sd15", scale)
    write_tokenizer(os.path.join(folder, "tokenizer_2"), "sd21", scale)
    _t5_tokenizer(os.path.join(folder, "tokenizer_3"))
    dump(scheduler_config("sd3"), os.path.join(folder, "scheduler", "scheduler_config.json"))
    dump({"_class_name": "StableDiffusion3Pipeline", "_diffusers_version": "0.29.0.dev0",
          "feature_extractor": [None, None], "image_encoder": [None, None],
          "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
          "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
          "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
          "text_encoder_3": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
          "tokenizer_2": ["transformers", "CLIPTokenizer"], "tokenizer_3": ["transformers", "T5TokenizerFast"],
          "transformer": ["diffusers", "SD3Transformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]},
         os.path.join(folder, "model_index.json"))


def assemble_ckpt(folder):
    """model.ckpt: the head of torch.save's zip format (a zip whose first member is archive/data.pkl starting
    with the pickle protocol-2 opcode). The pickle is an empty dict written as literal bytes: nothing is
    pickled, and a reader that detects the format must not unpickle it anyway."""
    os.makedirs(folder, exist_ok=True)
    with zipfile.ZipFile(os.path.join(folder, "model.ckpt"), "w", zipfile.ZIP_STORED) as z:
        for name, data in (("archive/data.pkl", b"\x80\x02}q\x00."), ("archive/version", b"3\n")):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed: same bytes every run
            z.writestr(info, data)


def assemble(name, folder, scale, results, tokens):
    L = LAYOUTS[name]
    k = L["kind"]
    if k == "sd":
        assemble_sd(folder, name, L, scale, results, tokens)
    elif k == "olive":
        assemble_olive(folder, scale, results)
    elif k == "sdxl":
        assemble_sdxl(folder, name, L, scale, results, tokens)
    elif k == "pixart":
        assemble_pixart(folder, scale, results)
    elif k == "sd3":
        assemble_sd3(folder, scale)
    elif k == "ckpt":
        assemble_ckpt(folder)
