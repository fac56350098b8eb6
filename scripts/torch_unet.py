"""ConditionalUnet1D as in Diffusion Policy (Chi et al.), in plain PyTorch, with the same
module structure so its state_dict keys are the reference's. Used by the fixture generator,
the checkpoint converter and the PyTorch benchmark; tsdp's C model must match it."""
import math

import torch
import torch.nn as nn


class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        half = self.dim // 2
        emb = math.log(10000) / (half - 1)
        emb = torch.exp(torch.arange(half, device=x.device, dtype=x.dtype) * -emb)
        emb = x[:, None] * emb[None, :]
        return torch.cat((emb.sin(), emb.cos()), dim=-1)


class Conv1dBlock(nn.Module):
    def __init__(self, cin, cout, k, n_groups=8):
        super().__init__()
        self.block = nn.Sequential(nn.Conv1d(cin, cout, k, padding=k // 2), nn.GroupNorm(n_groups, cout), nn.Mish())

    def forward(self, x):
        return self.block(x)


class ConditionalResidualBlock1D(nn.Module):
    def __init__(self, cin, cout, cond_dim, k=3, n_groups=8):
        super().__init__()
        self.blocks = nn.ModuleList([Conv1dBlock(cin, cout, k, n_groups), Conv1dBlock(cout, cout, k, n_groups)])
        self.out_channels = cout
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, cout * 2), nn.Unflatten(-1, (-1, 1)))
        self.residual_conv = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, cond):
        out = self.blocks[0](x)
        embed = self.cond_encoder(cond).reshape(x.shape[0], 2, self.out_channels, 1)
        out = embed[:, 0] * out + embed[:, 1]
        out = self.blocks[1](out)
        return out + self.residual_conv(x)


class ConditionalUnet1D(nn.Module):
    def __init__(self, input_dim, global_cond_dim, diffusion_step_embed_dim=256, down_dims=(256, 512, 1024),
                 kernel_size=5, n_groups=8):
        super().__init__()
        all_dims = [input_dim] + list(down_dims)
        dsed = diffusion_step_embed_dim
        self.diffusion_step_encoder = nn.Sequential(SinusoidalPosEmb(dsed), nn.Linear(dsed, dsed * 4), nn.Mish(),
                                                    nn.Linear(dsed * 4, dsed))
        cond_dim = dsed + global_cond_dim
        in_out = list(zip(all_dims[:-1], all_dims[1:]))
        mid = all_dims[-1]
        crb = lambda i, o: ConditionalResidualBlock1D(i, o, cond_dim, kernel_size, n_groups)
        self.mid_modules = nn.ModuleList([crb(mid, mid), crb(mid, mid)])
        self.down_modules = nn.ModuleList()
        for ind, (di, do) in enumerate(in_out):
            last = ind >= len(in_out) - 1
            self.down_modules.append(nn.ModuleList([crb(di, do), crb(do, do), Downsample1d(do) if not last else nn.Identity()]))
        self.up_modules = nn.ModuleList()
        for ind, (di, do) in enumerate(reversed(in_out[1:])):
            last = ind >= len(in_out) - 1
            self.up_modules.append(nn.ModuleList([crb(do * 2, di), crb(di, di), Upsample1d(di) if not last else nn.Identity()]))
        self.final_conv = nn.Sequential(Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
                                        nn.Conv1d(down_dims[0], input_dim, 1))

    def forward(self, sample, timestep, global_cond):
        x = sample.transpose(1, 2)
        g = torch.cat([self.diffusion_step_encoder(timestep), global_cond], dim=-1)
        h = []
        for r1, r2, down in self.down_modules:
            x = r2(r1(x, g), g)
            h.append(x)
            x = down(x)
        for m in self.mid_modules:
            x = m(x, g)
        for r1, r2, up in self.up_modules:
            x = torch.cat((x, h.pop()), dim=1)
            x = up(r2(r1(x, g), g))
        return self.final_conv(x).transpose(1, 2)


class Downsample1d(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, 2, 1)

    def forward(self, x):
        return self.conv(x)


class Upsample1d(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv = nn.ConvTranspose1d(dim, dim, 4, 2, 1)

    def forward(self, x):
        return self.conv(x)
