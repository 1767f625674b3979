"""PyTorch modules for tiny-sd, with the attribute names of diffusers (UNet2DConditionModel, AutoencoderKL)
and transformers (CLIPTextModel), so that torch.onnx.export (torch >= 1.13) names the ONNX nodes exactly
like a diffusers/optimum Stable Diffusion export (e.g. /down_blocks.0/attentions.0/transformer_blocks.0/
attn2/to_q/MatMul). Attention is plain bmm/softmax (no SDPA)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# ------------------------------------------------------------------------------------------ configs
UNET_CONFIG = dict(
    _class_name="UNet2DConditionModel",
    _diffusers_version="0.21.0",
    sample_size=16,
    in_channels=4,
    out_channels=4,
    center_input_sample=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    only_cross_attention=False,
    block_out_channels=[32, 64, 128],
    layers_per_block=1,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn="silu",
    norm_num_groups=32,
    norm_eps=1e-5,
    cross_attention_dim=128,
    attention_head_dim=4,  # diffusers SD-1.x semantics: this value is the NUMBER of heads
    use_linear_projection=False,
)

TEXT_CONFIG = dict(
    _name_or_path="tiny-sd/text_encoder",
    architectures=["CLIPTextModel"],
    model_type="clip_text_model",
    vocab_size=None,  # filled from the tokenizer
    hidden_size=128,
    intermediate_size=512,
    num_hidden_layers=3,
    num_attention_heads=4,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    bos_token_id=None,
    eos_token_id=None,
    pad_token_id=None,
    projection_dim=128,
)

VAE_CONFIG = dict(
    _class_name="AutoencoderKL",
    _diffusers_version="0.21.0",
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 3,
    up_block_types=["UpDecoderBlock2D"] * 3,
    block_out_channels=[32, 64, 64],
    layers_per_block=1,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=32,
    sample_size=64,
    mid_block_add_attention=False,
    scaling_factor=None,  # 1/std of the latents, measured after VAE training
    force_upcast=False,
)


# ------------------------------------------------------------------------------------------ blocks
class ResnetBlock2D(nn.Module):
    def __init__(self, in_channels, out_channels, temb_channels=None, groups=32, eps=1e-5):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        if temb_channels is not None:
            self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        else:
            self.time_emb_proj = None
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nonlinearity = nn.SiLU()
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x, temb=None):
        h = self.conv1(self.nonlinearity(self.norm1(x)))
        if self.time_emb_proj is not None and temb is not None:
            h = h + self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        h = self.conv2(self.dropout(self.nonlinearity(self.norm2(h))))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Downsample2D(nn.Module):
    def __init__(self, channels, padding=1):
        super().__init__()
        # padding=0 is diffusers' AutoencoderKL encoder (downsample_padding=0): an explicit asymmetric (0, 1, 0, 1)
        # zero pad, then a stride-2 conv without padding. tiny-sd's own VAE was trained with padding=1.
        self.pad_asymmetric = padding == 0
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.pad_asymmetric:
            x = F.pad(x, (0, 1, 0, 1), mode="constant", value=0)
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Attention(nn.Module):
    """diffusers Attention with the default AttnProcessor math: [B*heads, S, d] bmm / softmax / bmm."""

    def __init__(self, query_dim, heads, dim_head, cross_attention_dim=None):
        super().__init__()
        inner = heads * dim_head
        kv_dim = cross_attention_dim if cross_attention_dim is not None else query_dim
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(kv_dim, inner, bias=False)
        self.to_v = nn.Linear(kv_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def head_to_batch_dim(self, t):
        b, s, c = t.shape
        h = self.heads
        return t.reshape(b, s, h, c // h).permute(0, 2, 1, 3).reshape(b * h, s, c // h)

    def batch_to_head_dim(self, t):
        bh, s, d = t.shape
        h = self.heads
        return t.reshape(bh // h, h, s, d).permute(0, 2, 1, 3).reshape(bh // h, s, d * h)

    def forward(self, hidden_states, encoder_hidden_states=None):
        ctx = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q = self.head_to_batch_dim(self.to_q(hidden_states))
        k = self.head_to_batch_dim(self.to_k(ctx))
        v = self.head_to_batch_dim(self.to_v(ctx))
        probs = torch.bmm(q * self.scale, k.transpose(1, 2)).softmax(dim=-1)
        out = self.batch_to_head_dim(torch.bmm(probs, v))
        out = self.to_out[0](out)
        return self.to_out[1](out)


class GEGLU(nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, dim_head, cross_attention_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, dim_head, cross_attention_dim=cross_attention_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, ctx):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), ctx) + x
        x = self.ff(self.norm3(x)) + x
        return x


class Transformer2DModel(nn.Module):
    def __init__(self, heads, dim_head, in_channels, cross_attention_dim, groups=32, linear=False, num_layers=1):
        super().__init__()
        inner = heads * dim_head
        self.linear = linear  # diffusers' use_linear_projection (SD-2.x): proj_in/proj_out are Linear, not 1x1 Conv
        self.norm = nn.GroupNorm(groups, in_channels, eps=1e-6)
        self.proj_in = nn.Linear(in_channels, inner) if linear else nn.Conv2d(in_channels, inner, 1)
        # num_layers: diffusers' transformer_layers_per_block (SDXL: 1, 2, 10 per level), blocks applied in sequence
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, dim_head, cross_attention_dim)
                                                 for _ in range(num_layers)])
        self.proj_out = nn.Linear(inner, in_channels) if linear else nn.Conv2d(inner, in_channels, 1)

    def forward(self, x, ctx):
        if self.linear:
            return self._forward_linear(x, ctx)
        b, c, h, w = x.shape
        res = x
        x = self.proj_in(self.norm(x))
        inner = x.shape[1]
        x = x.permute(0, 2, 3, 1).reshape(b, h * w, inner)
        for blk in self.transformer_blocks:
            x = blk(x, ctx)
        x = x.reshape(b, h, w, inner).permute(0, 3, 1, 2)
        return self.proj_out(x) + res

    def _forward_linear(self, x, ctx):
        # diffusers' order for linear projections: flatten first, project, ..., project back, then unflatten
        b, c, h, w = x.shape
        res = x
        x = self.norm(x)
        x = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
        x = self.proj_in(x)
        for blk in self.transformer_blocks:
            x = blk(x, ctx)
        x = self.proj_out(x)
        x = x.reshape(b, h, w, c).permute(0, 3, 1, 2)
        return x + res


class Timesteps(nn.Module):
    def __init__(self, num_channels, flip_sin_to_cos=True, downscale_freq_shift=0.0):
        super().__init__()
        self.num_channels = num_channels
        self.flip = flip_sin_to_cos
        self.shift = downscale_freq_shift

    def forward(self, t):
        half = self.num_channels // 2
        exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - self.shift)
        emb = t.float()[:, None] * torch.exp(exponent)[None, :]
        emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
        if self.flip:
            emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
        return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels, time_embed_dim, cond_proj_dim=None):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        # diffusers' time_cond_proj_dim (LCM): the condition (guidance-scale embedding) is projected to the
        # sinusoid's width and added to it before linear_1
        self.cond_proj = nn.Linear(cond_proj_dim, in_channels, bias=False) if cond_proj_dim is not None else None
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, x, condition=None):
        if condition is not None:
            x = x + self.cond_proj(condition)
        return self.linear_2(self.act(self.linear_1(x)))


class DownBlock(nn.Module):
    """CrossAttnDownBlock2D (with attentions) or DownBlock2D (without)."""

    def __init__(self, cin, cout, temb, layers, cross, heads, xdim, add_down, groups=32, linear=False, tlayers=1):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, temb, groups=groups)
                                      for i in range(layers)])
        if cross:
            self.attentions = nn.ModuleList([Transformer2DModel(heads, cout // heads, cout, xdim, groups, linear, tlayers)
                                             for _ in range(layers)])
        else:
            self.attentions = None
        self.downsamplers = nn.ModuleList([Downsample2D(cout)]) if add_down else None

    def forward(self, x, temb, ctx):
        outs = ()
        for i, r in enumerate(self.resnets):
            x = r(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x, ctx)
            outs += (x,)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            outs += (x,)
        return x, outs


class UpBlock(nn.Module):
    """CrossAttnUpBlock2D or UpBlock2D, diffusers wiring."""

    def __init__(self, cin, cout, prev, temb, layers, cross, heads, xdim, add_up, groups=32, linear=False, tlayers=1):
        super().__init__()
        rs = []
        for i in range(layers + 1):
            skip = cin if i == layers else cout
            rin = prev if i == 0 else cout
            rs.append(ResnetBlock2D(rin + skip, cout, temb, groups=groups))
        self.resnets = nn.ModuleList(rs)
        if cross:
            self.attentions = nn.ModuleList([Transformer2DModel(heads, cout // heads, cout, xdim, groups, linear, tlayers)
                                             for _ in range(layers + 1)])
        else:
            self.attentions = None
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if add_up else None

    def forward(self, x, skips, temb, ctx):
        for i, r in enumerate(self.resnets):
            s = skips[-1]
            skips = skips[:-1]
            x = r(torch.cat([x, s], dim=1), temb)
            if self.attentions is not None:
                x = self.attentions[i](x, ctx)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class UNetMidBlock2DCrossAttn(nn.Module):
    def __init__(self, c, temb, heads, xdim, groups=32, linear=False, tlayers=1):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, temb, groups=groups), ResnetBlock2D(c, c, temb, groups=groups)])
        self.attentions = nn.ModuleList([Transformer2DModel(heads, c // heads, c, xdim, groups, linear, tlayers)])

    def forward(self, x, temb, ctx):
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, ctx)
        return self.resnets[1](x, temb)


class UNet2DConditionModel(nn.Module):
    def __init__(self, cfg=UNET_CONFIG):
        super().__init__()
        boc = cfg["block_out_channels"]
        L = cfg["layers_per_block"]
        n = len(boc)
        # diffusers' attention_head_dim is the NUMBER of heads (SD-1.x: one int; SD-2.x: one per down block, the
        # up blocks take the list reversed, the mid block its last entry)
        ahd = cfg["attention_head_dim"]
        heads = list(ahd) if isinstance(ahd, (list, tuple)) else [ahd] * n
        rheads = list(reversed(heads))
        xdim = cfg["cross_attention_dim"]
        groups = cfg.get("norm_num_groups", 32)
        linear = bool(cfg.get("use_linear_projection", False))
        # transformer_layers_per_block (SDXL): transformer blocks per Transformer2DModel, one int or one per down
        # block; the up blocks take the list reversed and the mid block its last entry (absent key: 1)
        tl = cfg.get("transformer_layers_per_block", 1)
        tlayers = list(tl) if isinstance(tl, (list, tuple)) else [tl] * n
        rtlayers = list(reversed(tlayers))
        temb = boc[0] * 4
        self.conv_in = nn.Conv2d(cfg["in_channels"], boc[0], 3, padding=1)
        self.time_proj = Timesteps(boc[0], cfg["flip_sin_to_cos"], cfg["freq_shift"])
        self.time_embedding = TimestepEmbedding(boc[0], temb, cfg.get("time_cond_proj_dim"))
        # addition_embed_type "text_time" (SDXL): the pooled text embedding and the sinusoids of the size/crop
        # (/aesthetic score) ids, concatenated, through a TimestepEmbedding added to the time embedding
        if cfg.get("addition_embed_type") == "text_time":
            self.add_time_proj = Timesteps(cfg["addition_time_embed_dim"], cfg["flip_sin_to_cos"], cfg["freq_shift"])
            self.add_embedding = TimestepEmbedding(cfg["projection_class_embeddings_input_dim"], temb)
        elif cfg.get("addition_embed_type") is not None:
            raise ValueError(f"addition_embed_type {cfg['addition_embed_type']!r} is not implemented")
        else:
            self.add_embedding = None
        self.down_blocks = nn.ModuleList()
        out = boc[0]
        for i, t in enumerate(cfg["down_block_types"]):
            cin, out = out, boc[i]
            self.down_blocks.append(DownBlock(cin, out, temb, L, t.startswith("CrossAttn"), heads[i], xdim, i < n - 1,
                                              groups, linear, tlayers[i]))
        self.mid_block = UNetMidBlock2DCrossAttn(boc[-1], temb, heads[-1], xdim, groups, linear, tlayers[-1])
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(boc))
        prev = rev[0]
        for i, t in enumerate(cfg["up_block_types"]):
            cout = rev[i]
            cin = rev[min(i + 1, n - 1)]
            self.up_blocks.append(UpBlock(cin, cout, prev, temb, L, t.startswith("CrossAttn"), rheads[i], xdim,
                                          i < n - 1, groups, linear, rtlayers[i]))
            prev = cout
        self.conv_norm_out = nn.GroupNorm(cfg["norm_num_groups"], boc[0], eps=cfg["norm_eps"])
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(boc[0], cfg["out_channels"], 3, padding=1)
        self.layers = L

    def forward(self, sample, timestep, encoder_hidden_states, timestep_cond=None, text_embeds=None, time_ids=None):
        if timestep.dim() == 0:
            timestep = timestep[None].expand(sample.shape[0])
        emb = self.time_embedding(self.time_proj(timestep), timestep_cond)
        if self.add_embedding is not None:
            # diffusers' get_aug_embed for "text_time": every time id through the sinusoid, flattened per item
            time_embeds = self.add_time_proj(time_ids.flatten()).reshape(text_embeds.shape[0], -1)
            add_embeds = torch.cat([text_embeds, time_embeds], dim=-1).to(emb.dtype)
            emb = emb + self.add_embedding(add_embeds)
        x = self.conv_in(sample)
        skips = (x,)
        for b in self.down_blocks:
            x, res = b(x, emb, encoder_hidden_states)
            skips += res
        x = self.mid_block(x, emb, encoder_hidden_states)
        for b in self.up_blocks:
            k = len(b.resnets)
            res, skips = skips[-k:], skips[:-k]
            x = b(x, res, emb, encoder_hidden_states)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


# ------------------------------------------------------------------------------------------ text encoder
class CLIPAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.head_dim = d // heads
        self.scale = self.head_dim ** -0.5
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.q_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x, mask):
        b, s, d = x.shape
        h = self.heads

        def sh(t):
            return t.reshape(b, s, h, self.head_dim).permute(0, 2, 1, 3).reshape(b * h, s, self.head_dim)

        q, k, v = sh(self.q_proj(x) * self.scale), sh(self.k_proj(x)), sh(self.v_proj(x))
        w = torch.bmm(q, k.transpose(1, 2)) + mask
        o = torch.bmm(w.softmax(dim=-1), v)
        o = o.reshape(b, h, s, self.head_dim).permute(0, 2, 1, 3).reshape(b, s, d)
        return self.out_proj(o)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class CLIPMLP(nn.Module):
    def __init__(self, d, inner, act="quick_gelu"):
        super().__init__()
        # transformers' hidden_act: CLIP ViT-L/14 (SD-1.x) uses quick_gelu, OpenCLIP-H (SD-2.x) exact (erf) gelu
        self.activation_fn = nn.GELU() if act == "gelu" else QuickGELU()
        self.fc1 = nn.Linear(d, inner)
        self.fc2 = nn.Linear(inner, d)

    def forward(self, x):
        return self.fc2(self.activation_fn(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    def __init__(self, d, inner, heads, eps, act="quick_gelu"):
        super().__init__()
        self.self_attn = CLIPAttention(d, heads)
        self.layer_norm1 = nn.LayerNorm(d, eps=eps)
        self.mlp = CLIPMLP(d, inner, act)
        self.layer_norm2 = nn.LayerNorm(d, eps=eps)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(cfg["hidden_size"], cfg["intermediate_size"],
                                                      cfg["num_attention_heads"], cfg["layer_norm_eps"],
                                                      cfg.get("hidden_act", "quick_gelu"))
                                     for _ in range(cfg["num_hidden_layers"])])

    def forward(self, x, mask, states=None):
        for l in self.layers:
            x = l(x, mask)
            if states is not None:  # transformers' output_hidden_states: every layer's output
                states.append(x)
        return x


class CLIPTextEmbeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.token_embedding = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.position_embedding = nn.Embedding(cfg["max_position_embeddings"], cfg["hidden_size"])
        self.register_buffer("position_ids", torch.arange(cfg["max_position_embeddings"])[None], persistent=False)

    def forward(self, input_ids):
        s = input_ids.shape[-1]
        return self.token_embedding(input_ids) + self.position_embedding(self.position_ids[:, :s])


class CLIPTextTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = CLIPTextEmbeddings(cfg)
        self.encoder = CLIPEncoder(cfg)
        self.final_layer_norm = nn.LayerNorm(cfg["hidden_size"], eps=cfg["layer_norm_eps"])
        n = cfg["max_position_embeddings"]
        self.register_buffer("causal_mask", torch.full((n, n), -1e9).triu(1)[None], persistent=False)

    def forward(self, input_ids, states=None):
        """states: a list to append transformers' hidden_states to (embeddings, then each layer's output, before
        the final layer norm); None (the default) traces exactly what it always did."""
        s = input_ids.shape[-1]
        x = self.embeddings(input_ids)
        if states is not None:
            states.append(x)
        x = self.encoder(x, self.causal_mask[:, :s, :s], states)
        x = self.final_layer_norm(x)
        # EOS has the highest id (CLIP convention; transformers' rule whenever the config's eos_token_id is 2)
        eos = input_ids.to(torch.int32).argmax(dim=-1)
        pooled = x[torch.arange(x.shape[0]), eos]
        return x, pooled


class CLIPTextModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.text_model = CLIPTextTransformer(cfg)

    def forward(self, input_ids):
        return self.text_model(input_ids)


class CLIPTextModelWithProjection(nn.Module):
    """transformers' CLIPTextModelWithProjection (SDXL's text_encoder_2): the pooled output (final-layer-normed
    state at the EOS) through text_projection, a Linear without bias, as text_embeds."""

    def __init__(self, cfg):
        super().__init__()
        self.text_model = CLIPTextTransformer(cfg)
        self.text_projection = nn.Linear(cfg["hidden_size"], cfg["projection_dim"], bias=False)

    def forward(self, input_ids):
        last, pooled = self.text_model(input_ids)
        return self.text_projection(pooled), last


# ------------------------------------------------------------------------------------------ VAE
class EncDownBlock(nn.Module):  # DownEncoderBlock2D
    def __init__(self, cin, cout, layers, add_down, groups=32, downsample_padding=1):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, None, groups=groups, eps=1e-6)
                                      for i in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(cout, downsample_padding)]) if add_down else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
        return x


class DecUpBlock(nn.Module):  # UpDecoderBlock2D
    def __init__(self, cin, cout, layers, add_up, groups=32):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, None, groups=groups, eps=1e-6)
                                      for i in range(layers + 1)])
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if add_up else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class VAEAttention(nn.Module):
    """diffusers' Attention as the VAE mid block builds it (single head over all channels, GroupNorm first, q/k/v
    with bias, residual added): AttnProcessor math on [B, H*W, C]."""

    def __init__(self, c, groups=32, eps=1e-6):
        super().__init__()
        self.heads = 1
        self.scale = c ** -0.5
        self.group_norm = nn.GroupNorm(groups, c, eps=eps)
        self.to_q = nn.Linear(c, c)
        self.to_k = nn.Linear(c, c)
        self.to_v = nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c), nn.Dropout(0.0)])

    def forward(self, x):
        b, c, h, w = x.shape
        res = x
        t = x.reshape(b, c, h * w).transpose(1, 2)
        t = self.group_norm(t.transpose(1, 2)).transpose(1, 2)
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        probs = torch.bmm(q * self.scale, k.transpose(1, 2)).softmax(dim=-1)
        t = self.to_out[1](self.to_out[0](torch.bmm(probs, v)))
        return t.transpose(1, 2).reshape(b, c, h, w) + res


class VAEMidBlock(nn.Module):  # UNetMidBlock2D (mid_block_add_attention False: tiny-sd; True: Stable Diffusion)
    def __init__(self, c, groups=32, attention=False):
        super().__init__()
        if not attention:
            self.resnets = nn.ModuleList([ResnetBlock2D(c, c, None, groups=groups, eps=1e-6),
                                          ResnetBlock2D(c, c, None, groups=groups, eps=1e-6)])
            self.attentions = None
            return
        # diffusers' construction order (resnet 0, attention, resnet 1), so a seed gives the same draws per module
        r0 = ResnetBlock2D(c, c, None, groups=groups, eps=1e-6)
        attn = VAEAttention(c, groups)
        r1 = ResnetBlock2D(c, c, None, groups=groups, eps=1e-6)
        self.attentions = nn.ModuleList([attn])
        self.resnets = nn.ModuleList([r0, r1])

    def forward(self, x):
        x = self.resnets[0](x)
        if self.attentions is not None:
            x = self.attentions[0](x)
        return self.resnets[1](x)


class Encoder(nn.Module):
    def __init__(self, cfg, downsample_padding=1):
        super().__init__()
        boc = cfg["block_out_channels"]
        groups = cfg.get("norm_num_groups", 32)
        self.conv_in = nn.Conv2d(cfg["in_channels"], boc[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        out = boc[0]
        for i in range(len(boc)):
            cin, out = out, boc[i]
            self.down_blocks.append(EncDownBlock(cin, out, cfg["layers_per_block"], i < len(boc) - 1, groups,
                                                 downsample_padding))
        # absent key = no attention, as tiny-sd has always built it (diffusers' default would be True)
        self.mid_block = VAEMidBlock(boc[-1], groups, cfg.get("mid_block_add_attention", False))
        self.conv_norm_out = nn.GroupNorm(cfg["norm_num_groups"], boc[-1], eps=1e-6)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(boc[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            x = b(x)
        x = self.mid_block(x)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        boc = cfg["block_out_channels"]
        rev = list(reversed(boc))
        groups = cfg.get("norm_num_groups", 32)
        self.conv_in = nn.Conv2d(cfg["latent_channels"], boc[-1], 3, padding=1)
        self.mid_block = VAEMidBlock(boc[-1], groups, cfg.get("mid_block_add_attention", False))
        self.up_blocks = nn.ModuleList()
        prev = rev[0]
        for i in range(len(boc)):
            self.up_blocks.append(DecUpBlock(prev, rev[i], cfg["layers_per_block"], i < len(boc) - 1, groups))
            prev = rev[i]
        self.conv_norm_out = nn.GroupNorm(cfg["norm_num_groups"], boc[0], eps=1e-6)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(boc[0], cfg["out_channels"], 3, padding=1)

    def forward(self, z):
        x = self.conv_in(z)
        x = self.mid_block(x)
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(self.conv_act(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    def __init__(self, cfg=VAE_CONFIG, encoder_downsample_padding=1):
        super().__init__()
        L = cfg["latent_channels"]
        # encoder_downsample_padding=0 is Stable Diffusion's VAE; 1 is what tiny-sd's VAE was trained with
        self.encoder = Encoder(cfg, encoder_downsample_padding)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * L, 2 * L, 1)
        self.post_quant_conv = nn.Conv2d(L, L, 1)

    def encode_params(self, x):
        return self.quant_conv(self.encoder(x))  # [B, 2L, h, w] = mean, logvar

    def encode_mean(self, x):
        return self.encode_params(x).chunk(2, dim=1)[0]

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


class VaeEncoderExport(nn.Module):
    """optimum's VaeEncoder wrapper exposes `encoder`, `quant_conv` at top level: sample -> latent_sample (mean)."""

    def __init__(self, vae):
        super().__init__()
        self.encoder = vae.encoder
        self.quant_conv = vae.quant_conv

    def forward(self, sample):
        return self.quant_conv(self.encoder(sample)).chunk(2, dim=1)[0]


class VaeDecoderExport(nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.post_quant_conv = vae.post_quant_conv
        self.decoder = vae.decoder

    def forward(self, latent_sample):
        return self.decoder(self.post_quant_conv(latent_sample))


def count_params(m):
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------------------------------ schedule
SCHEDULER_CONFIG = dict(
    _class_name="DDIMScheduler",
    _diffusers_version="0.21.0",
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    prediction_type="epsilon",
    set_alpha_to_one=False,
    steps_offset=1,
    clip_sample=False,
    trained_betas=None,
    timestep_spacing="leading",
    skip_prk_steps=True,
)


def alphas_cumprod(cfg=SCHEDULER_CONFIG):
    betas = torch.linspace(cfg["beta_start"] ** 0.5, cfg["beta_end"] ** 0.5, cfg["num_train_timesteps"],
                           dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()
