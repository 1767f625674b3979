"""Export tiny-sd to an optimum/diffusers-style ONNX Stable Diffusion folder (opset 14, fp32).

    /usr/bin/python3 tools/tiny-sd/export.py [--ckpt checkpoints/unet.pt] [--out models/tiny-sd] [--raw]

Works from the latest checkpoint at any time (training may be running). Uses the EMA weights unless --raw.
Tensor names:
  text_encoder/model.onnx  input_ids int64 [B,77] -> last_hidden_state [B,77,D], pooler_output [B,D]
  unet/model.onnx          sample f32 [B,4,16,16], timestep f32 [B], encoder_hidden_states f32 [B,77,D]
                           -> out_sample f32 [B,4,16,16]
  vae_encoder/model.onnx   sample f32 [B,3,64,64] in [-1,1] -> latent_sample f32 [B,4,16,16]
                           (the posterior MEAN, unscaled: multiply by scaling_factor for the UNet)
  vae_decoder/model.onnx   latent_sample f32 [B,4,16,16] (unscaled: divide by scaling_factor first)
                           -> sample f32 [B,3,64,64] in [-1,1]
"""
import argparse
import json
import os
import sys

# Busy-waiting OpenMP threads collapse under CPU contention (measured: 13 s/step instead of 2 s/step for the
# VAE while other jobs shared the 2 cores); passive waiting must be set before torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import domain  # noqa: E402
import modules as M  # noqa: E402

CK = os.path.join(HERE, "checkpoints")
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


class TextExport(torch.nn.Module):
    """Top-level attribute `text_model` keeps HF scope names (/text_model/encoder/layers.0/...)."""

    def __init__(self, te):
        super().__init__()
        self.text_model = te.text_model

    def forward(self, input_ids):
        return self.text_model(input_ids)


def dump(obj, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def export(model, args, path, input_names, output_names, dynamic_axes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, args, path, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=14, do_constant_folding=True)
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return os.path.getsize(path)


def load_models(ckpt, raw=False):
    ck = torch.load(ckpt)
    unet = M.UNet2DConditionModel(ck.get("unet_config", M.UNET_CONFIG))
    text = M.CLIPTextModel(ck["text_config"])
    if raw:
        unet.load_state_dict(ck["unet"])
        text.load_state_dict(ck["text"])
    else:
        unet.load_state_dict(ck["ema_unet"])
        text.load_state_dict(ck["ema_text"])
    unet.eval()
    text.eval()
    return unet, text, ck


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(CK, "unet.pt"))
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "tiny-sd"))
    ap.add_argument("--raw", action="store_true", help="export the raw (non-EMA) weights")
    a = ap.parse_args()
    torch.set_num_threads(2)
    out = a.out
    unet, text, ck = load_models(a.ckpt, a.raw)
    vae, stats = M.AutoencoderKL(), json.load(open(os.path.join(CK, "vae_stats.json")))
    vae.load_state_dict(torch.load(os.path.join(CK, "vae.pt"))["model"])
    vae.eval()
    tcfg = ck["text_config"]
    D = tcfg["hidden_size"]
    sizes = {}
    ids = torch.tensor([domain.encode("a red circle at the top left on a gray background")] * 2, dtype=torch.long)
    sizes["text_encoder"] = export(TextExport(text), (ids,), os.path.join(out, "text_encoder", "model.onnx"),
                                   ["input_ids"], ["last_hidden_state", "pooler_output"],
                                   {"input_ids": {0: "batch"}, "last_hidden_state": {0: "batch"},
                                    "pooler_output": {0: "batch"}})
    sizes["unet"] = export(unet, (torch.randn(2, 4, 16, 16), torch.tensor([500.0, 500.0]), torch.randn(2, 77, D)),
                           os.path.join(out, "unet", "model.onnx"),
                           ["sample", "timestep", "encoder_hidden_states"], ["out_sample"],
                           {"sample": {0: "batch"}, "timestep": {0: "batch"}, "encoder_hidden_states": {0: "batch"},
                            "out_sample": {0: "batch"}})
    sizes["vae_encoder"] = export(M.VaeEncoderExport(vae), (torch.randn(1, 3, 64, 64),),
                                  os.path.join(out, "vae_encoder", "model.onnx"), ["sample"], ["latent_sample"],
                                  {"sample": {0: "batch"}, "latent_sample": {0: "batch"}})
    sizes["vae_decoder"] = export(M.VaeDecoderExport(vae), (torch.randn(1, 4, 16, 16),),
                                  os.path.join(out, "vae_decoder", "model.onnx"), ["latent_sample"], ["sample"],
                                  {"latent_sample": {0: "batch"}, "sample": {0: "batch"}})
    # configs
    vcfg = dict(M.VAE_CONFIG, scaling_factor=round(stats["scaling_factor"], 6))
    dump(vcfg, os.path.join(out, "vae_encoder", "config.json"))
    dump(vcfg, os.path.join(out, "vae_decoder", "config.json"))
    dump(dict(ck.get("unet_config", M.UNET_CONFIG)), os.path.join(out, "unet", "config.json"))
    dump(dict(tcfg, torch_dtype="float32"), os.path.join(out, "text_encoder", "config.json"))
    dump(M.SCHEDULER_CONFIG, os.path.join(out, "scheduler", "scheduler_config.json"))
    dump({
        "_class_name": "OnnxStableDiffusionPipeline",
        "_diffusers_version": "0.21.0",
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["diffusers", "OnnxRuntimeModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
        "unet": ["diffusers", "OnnxRuntimeModel"],
        "vae_decoder": ["diffusers", "OnnxRuntimeModel"],
        "vae_encoder": ["diffusers", "OnnxRuntimeModel"],
    }, os.path.join(out, "model_index.json"))
    domain.write_tokenizer(os.path.join(out, "tokenizer"))
    dump(domain.domain_dict(), os.path.join(out, "domain.json"))
    info = {"training_step": ck["step"], "weights": "raw" if a.raw else "ema", "checkpoint": os.path.basename(a.ckpt),
            "onnx_bytes": sizes, "onnx_total_mb": round(sum(sizes.values()) / 1e6, 2),
            "params": {"unet": M.count_params(unet), "text_encoder": M.count_params(text),
                       "vae_encoder": M.count_params(M.VaeEncoderExport(vae)),
                       "vae_decoder": M.count_params(M.VaeDecoderExport(vae))},
            "scaling_factor": stats["scaling_factor"], "opset": 14,
            "timestep_input": "float32 [B]",
            "vae_encoder_output": "latent_sample = posterior mean, unscaled"}
    dump(info, os.path.join(out, "export_info.json"))
    # reference inputs/outputs from PyTorch, for check_onnx.mjs (onnxruntime-node must reproduce them)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        ids1 = torch.tensor([domain.encode("a small blue square at the bottom right on a white background")])
        lh, po = text(ids1)
        smp = torch.randn(1, 4, 16, 16, generator=g)
        ts = torch.tensor([321.0])
        eps = unet(smp, ts, lh)
        img = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
        lat = M.VaeEncoderExport(vae)(img)
        dec = M.VaeDecoderExport(vae)(smp)
    ref = {"text_encoder": {"input_ids": ids1[0].tolist(), "last_hidden_state": lh.flatten().tolist(),
                            "pooler_output": po.flatten().tolist()},
           "unet": {"sample": smp.flatten().tolist(), "timestep": ts.tolist(), "out_sample": eps.flatten().tolist()},
           "vae_encoder": {"sample": img.flatten().tolist(), "latent_sample": lat.flatten().tolist()},
           "vae_decoder": {"latent_sample": smp.flatten().tolist(), "sample": dec.flatten().tolist()}}
    os.makedirs(os.path.join(HERE, "runs"), exist_ok=True)
    with open(os.path.join(HERE, "runs", "export_check.json"), "w") as f:
        json.dump(ref, f)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
