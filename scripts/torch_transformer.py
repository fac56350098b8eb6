"""TransformerForDiffusion (Diffusion Policy's transformer base, the variant tsdp implements:
observations and time as condition tokens, MLP condition encoder), written in plain PyTorch
with the reference's module names so state_dict keys match. The fixture generator, the
checkpoint converter and the PyTorch benchmark use it; tsdp's C model (nn/transformer.c) must
compute the same function."""
import math

import torch
import torch.nn as nn


class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, t):
        half = self.dim // 2
        f = torch.exp(torch.arange(half, device=t.device, dtype=t.dtype) * -(math.log(10000) / (half - 1)))
        a = t[:, None] * f[None, :]
        return torch.cat((a.sin(), a.cos()), dim=-1)


class TransformerForDiffusion(nn.Module):
    def __init__(self, input_dim, output_dim, horizon, n_obs_steps, cond_dim, n_layer=8, n_head=4, n_emb=256,
                 p_drop_emb=0.0, p_drop_attn=0.01, causal_attn=True):
        super().__init__()
        T, Tc = horizon, 1 + n_obs_steps
        self.input_emb = nn.Linear(input_dim, n_emb)
        self.pos_emb = nn.Parameter(torch.zeros(1, T, n_emb))
        self.drop = nn.Dropout(p_drop_emb)
        self.time_emb = SinusoidalPosEmb(n_emb)
        self.cond_obs_emb = nn.Linear(cond_dim, n_emb)
        self.cond_pos_emb = nn.Parameter(torch.zeros(1, Tc, n_emb))
        self.encoder = nn.Sequential(nn.Linear(n_emb, 4 * n_emb), nn.Mish(), nn.Linear(4 * n_emb, n_emb))
        layer = nn.TransformerDecoderLayer(d_model=n_emb, nhead=n_head, dim_feedforward=4 * n_emb,
                                           dropout=p_drop_attn, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.decoder = nn.TransformerDecoder(decoder_layer=layer, num_layers=n_layer)
        self.ln_f = nn.LayerNorm(n_emb)
        self.head = nn.Linear(n_emb, output_dim)
        # The reference keeps an empty parameter from a helper mixin; strict loading needs it.
        self._dummy_variable = nn.Parameter(torch.zeros(0))
        if causal_attn:
            i = torch.arange(T)
            self.register_buffer("mask", torch.zeros(T, T).masked_fill(i[None, :] > i[:, None], float("-inf")))
            s = torch.arange(Tc)
            self.register_buffer("memory_mask",
                                 torch.zeros(T, Tc).masked_fill(i[:, None] < s[None, :] - 1, float("-inf")))
        else:
            self.mask = None
            self.memory_mask = None
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.MultiheadAttention):
                nn.init.normal_(m.in_proj_weight, 0.0, 0.02)
                nn.init.zeros_(m.in_proj_bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.pos_emb, 0.0, 0.02)
        nn.init.normal_(self.cond_pos_emb, 0.0, 0.02)

    def decay_names(self):
        """The reference optimiser's decayed parameters: Linear and attention weights."""
        out = set()
        for mn, m in self.named_modules():
            for pn, _ in m.named_parameters(recurse=False):
                if pn.endswith("weight") and isinstance(m, (nn.Linear, nn.MultiheadAttention)):
                    out.add(mn + "." + pn if mn else pn)
        return out

    def forward(self, sample, timestep, cond):
        """sample (B, T, input_dim), timestep (B,), cond (B, n_obs_steps, cond_dim)."""
        t = timestep.expand(sample.shape[0]).to(sample.dtype)
        c = torch.cat([self.time_emb(t).unsqueeze(1), self.cond_obs_emb(cond)], dim=1)
        memory = self.encoder(self.drop(c + self.cond_pos_emb[:, :c.shape[1]]))
        x = self.drop(self.input_emb(sample) + self.pos_emb[:, :sample.shape[1]])
        x = self.decoder(tgt=x, memory=memory, tgt_mask=self.mask, memory_mask=self.memory_mask)
        return self.head(self.ln_f(x))
