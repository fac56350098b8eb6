#!/usr/bin/python3
"""Write the PyTorch reference fixtures the C tests compare against.

Run with Debian's python3-torch:  /usr/bin/python3 scripts/make_fixtures.py tests/fixtures
(`make fixtures`). Inputs are drawn in float32 with a fixed seed; the reference outputs and
gradients are computed by PyTorch in float64 from those float32 inputs and stored as float32,
so the C float32 result is compared with an (almost) exact answer.

ops.h5 layout: one group per case with datasets in0.., out, gout (upstream gradient), gin0..
(gradient of sum(out * gout) w.r.t. each input) and integer/float parameters as attributes.
"""
import math
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(0)
rng = np.random.default_rng(1234)


def rand(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def case(f, name, fn, inputs, grad_inputs=None, **attrs):
    """fn(*tensors) -> output tensor. Every float input gets a gradient."""
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
    out = fn(*ts)
    gout = rand(*out.shape)
    out.backward(torch.tensor(gout, dtype=torch.float64))
    g = f.create_group(name)
    for i, (x, t) in enumerate(zip(inputs, ts)):
        g["in%d" % i] = x
        if grad_inputs is None or i in grad_inputs:
            g["gin%d" % i] = t.grad.numpy().astype(np.float32)
    g["out"] = out.detach().numpy().astype(np.float32)
    g["gout"] = gout
    for k, v in attrs.items():
        g.attrs[k] = v


def sinusoidal(t, dim):
    # Diffusion Policy's SinusoidalPosEmb
    half = dim // 2
    emb = math.log(10000) / (half - 1)
    emb = torch.exp(torch.arange(half, dtype=torch.float64) * -emb)
    emb = t[:, None] * emb[None, :]
    return torch.cat((emb.sin(), emb.cos()), dim=-1)


def attention(q, k, v, mask):
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask
    return torch.softmax(s, -1) @ v


def gauss_logprob(x, m, ls):
    return torch.distributions.Normal(m, ls.exp()).log_prob(x).sum(-1)


def write_ops(path):
    with h5py.File(path, "w") as f:
        case(f, "add", torch.add, [rand(2, 3, 4), rand(3, 1)])
        case(f, "sub", torch.sub, [rand(4, 5), rand(5)])
        case(f, "mul", torch.mul, [rand(2, 1, 4), rand(3, 1)])
        case(f, "scale", lambda a: a * -1.7, [rand(3, 4)], s=-1.7)
        case(f, "sum", lambda x: x.sum(1), [rand(2, 3, 4)], axis=1, keepdim=0)
        case(f, "mean", lambda x: x.mean(2, keepdim=True), [rand(2, 3, 4)], axis=2, keepdim=1)
        case(f, "permute", lambda x: x.permute(0, 2, 3, 1).contiguous(), [rand(2, 3, 4, 5)], perm=[0, 2, 3, 1])
        case(f, "concat", lambda a, b: torch.cat([a, b], 1), [rand(2, 3, 4), rand(2, 2, 4)], axis=1)
        case(f, "slice", lambda x: x[:, 1:4], [rand(2, 6, 3)], axis=1, start=1, end=4)
        case(f, "matmul", torch.matmul, [rand(5, 7), rand(7, 3)], ta=0, tb=0)
        case(f, "bmm_tb", lambda a, b: a @ b.transpose(1, 2), [rand(2, 4, 6), rand(2, 5, 6)], ta=0, tb=1)
        case(f, "bmm_ta", lambda a, b: a.transpose(1, 2) @ b, [rand(2, 6, 4), rand(2, 6, 5)], ta=1, tb=0)
        case(f, "linear", F.linear, [rand(3, 4, 6), rand(5, 6), rand(5)])
        case(f, "conv1d_k5", lambda x, w, b: F.conv1d(x, w, b, 1, 2), [rand(2, 3, 16), rand(8, 3, 5), rand(8)],
             stride=1, pad=2)
        case(f, "conv1d_k3s2", lambda x, w, b: F.conv1d(x, w, b, 2, 1), [rand(2, 4, 16), rand(4, 4, 3), rand(4)],
             stride=2, pad=1)
        case(f, "conv1d_k1", lambda x, w, b: F.conv1d(x, w, b), [rand(2, 3, 8), rand(5, 3, 1), rand(5)],
             stride=1, pad=0)
        case(f, "convt", lambda x, w, b: F.conv_transpose1d(x, w, b, 2, 1), [rand(2, 4, 8), rand(4, 3, 4), rand(3)],
             stride=2, pad=1)
        case(f, "group_norm", lambda x, g, b: F.group_norm(x, 8, g, b, 1e-5),
             [rand(2, 16, 8, scale=3.0) + 1.0, rand(16), rand(16)], groups=8)
        case(f, "layer_norm", lambda x, g, b: F.layer_norm(x, (10,), g, b, 1e-5),
             [rand(3, 4, 10, scale=2.0), rand(10), rand(10)])
        xs = rand(4, 8, scale=3.0)
        xs[0, :3] = [25.0, -30.0, 19.0]  # softplus threshold region
        case(f, "mish", F.mish, [xs])
        case(f, "silu", F.silu, [xs])
        case(f, "gelu", F.gelu, [xs])
        case(f, "softplus", F.softplus, [xs])
        case(f, "tanh", torch.tanh, [xs])
        case(f, "softmax", lambda x: torch.softmax(x, -1), [rand(3, 7, scale=2.0)])
        case(f, "log_softmax", lambda x: torch.log_softmax(x, -1), [rand(3, 7, scale=2.0)])
        mask = np.zeros((5, 6), np.float32)
        for i in range(5):
            mask[i, i + 2:] = -np.inf  # each row keeps columns 0..i+1
        case(f, "attention", attention, [rand(2, 2, 5, 4), rand(2, 2, 6, 4), rand(2, 2, 6, 4), mask],
             grad_inputs=[0, 1, 2])
        case(f, "sinusoidal", lambda t: sinusoidal(t, 16), [np.array([0.0, 3.0, 17.5, 99.0], np.float32)], dim=16)
        case(f, "mse", F.mse_loss, [rand(4, 6), rand(4, 6)])
        acts = np.array([0, 3, 1, 2, 3], np.int32)
        case(f, "cat_logprob",
             lambda l: torch.distributions.Categorical(logits=l).log_prob(torch.tensor(acts, dtype=torch.long)),
             [rand(5, 4, scale=2.0)])
        f["cat_logprob/actions"] = acts.astype(np.int64)
        case(f, "entropy", lambda l: torch.distributions.Categorical(logits=l).entropy(), [rand(5, 4, scale=2.0)])
        case(f, "gauss", gauss_logprob, [rand(4, 3), rand(4, 3), rand(3, scale=0.5)])
        case(f, "gauss_rows", gauss_logprob, [rand(4, 3), rand(4, 3), rand(4, 3, scale=0.5)])
        write_optim(f)


def write_optim(f):
    """Three AdamW steps (torch.optim.AdamW) and one clip_grad_norm_."""
    g = f.create_group("adamw")
    p0 = rand(4, 5)
    grads = [rand(4, 5) for _ in range(3)]
    p = torch.nn.Parameter(torch.tensor(p0))
    opt = torch.optim.AdamW([p], lr=1e-2, betas=(0.95, 0.999), eps=1e-8, weight_decay=0.1)
    for gr in grads:
        p.grad = torch.tensor(gr)
        opt.step()
    g["p0"] = p0
    g["grads"] = np.stack(grads)
    g["p3"] = p.detach().numpy()
    g.attrs["lr"], g.attrs["beta1"], g.attrs["beta2"], g.attrs["eps"], g.attrs["wd"] = 1e-2, 0.95, 0.999, 1e-8, 0.1
    c = f.create_group("clip")
    a, b = torch.nn.Parameter(torch.zeros(3, 4)), torch.nn.Parameter(torch.zeros(7))
    ga, gb = rand(3, 4), rand(7)
    a.grad, b.grad = torch.tensor(ga), torch.tensor(gb)
    norm = torch.nn.utils.clip_grad_norm_([a, b], 1.0)
    c["ga"], c["gb"] = ga, gb
    c["ga_clipped"], c["gb_clipped"] = a.grad.numpy(), b.grad.numpy()
    c.attrs["norm"] = float(norm)


def write_unet(path):
    """A small ConditionalUnet1D (down_dims 16, 24, 32; step embedding 16): weights, inputs, the
    eps output, and gradients of sum(out * gout) for the input and every parameter."""
    from torch_unet import ConditionalUnet1D
    torch.manual_seed(3)
    net = ConditionalUnet1D(2, 6, diffusion_step_embed_dim=16, down_dims=(16, 24, 32), kernel_size=5, n_groups=8)
    for p in net.parameters():  # move GroupNorm off its trivial init so its gradients matter
        if p.dim() == 1:
            p.data += 0.1 * torch.randn_like(p)
    net = net.double()
    x = torch.tensor(rand(3, 16, 2), dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.0, 17.0, 99.0], dtype=torch.float64)
    cond = torch.tensor(rand(3, 6), dtype=torch.float64)
    out = net(x, t, cond)
    gout = rand(*out.shape)
    out.backward(torch.tensor(gout, dtype=torch.float64))
    with h5py.File(path, "w") as f:
        f["x"], f["t"], f["cond"] = x.detach().numpy().astype(np.float32), t.numpy().astype(np.float32), \
            cond.numpy().astype(np.float32)
        f["out"], f["gout"], f["gx"] = out.detach().numpy().astype(np.float32), gout, x.grad.numpy().astype(np.float32)
        for k, v in net.state_dict().items():
            f["params/" + k] = v.numpy().astype(np.float32)
        for k, v in net.named_parameters():
            f["grads/" + k] = v.grad.numpy().astype(np.float32)
        f.attrs["down_dims"] = [16, 24, 32]


def write_transformer(path):
    """A small TransformerForDiffusion (n_emb 32, 4 heads, 2 layers, horizon 8, 2 observation
    steps of 5): weights, inputs, the eps output, and gradients of sum(out * gout) for the input
    and every parameter; evaluation mode (no dropout)."""
    from torch_transformer import TransformerForDiffusion
    global rng
    rng = np.random.default_rng(4321)  # its own stream: the file can be regenerated alone
    torch.manual_seed(5)
    net = TransformerForDiffusion(2, 2, 8, 2, 5, n_layer=2, n_head=4, n_emb=32)
    for n, p in net.named_parameters():  # move LayerNorms, biases and embeddings off their trivial init
        if p.dim() == 1 or "pos_emb" in n:
            p.data += 0.1 * torch.randn_like(p)
    net = net.double().eval()
    x = torch.tensor(rand(3, 8, 2), dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.0, 17.0, 99.0], dtype=torch.float64)
    cond = torch.tensor(rand(3, 2, 5), dtype=torch.float64)
    out = net(x, t, cond)
    gout = rand(*out.shape)
    out.backward(torch.tensor(gout, dtype=torch.float64))
    with h5py.File(path, "w") as f:
        f["x"], f["t"] = x.detach().numpy().astype(np.float32), t.numpy().astype(np.float32)
        f["cond"] = cond.numpy().reshape(3, 10).astype(np.float32)
        f["out"], f["gout"], f["gx"] = out.detach().numpy().astype(np.float32), gout, x.grad.numpy().astype(np.float32)
        decay = net.decay_names()
        for k, v in net.named_parameters():
            if v.numel() == 0:
                continue
            f["params/" + k] = v.detach().numpy().astype(np.float32)
            f["params/" + k].attrs["decay"] = int(k in decay)
            f["grads/" + k] = v.grad.numpy().astype(np.float32)
        f["mask"], f["memory_mask"] = net.mask.numpy().astype(np.float32), net.memory_mask.numpy().astype(np.float32)
    # Parameter counts of the reference Push-T configuration and of drafter sizes.
    sizes = {}
    for E, L in ((256, 8), (128, 1), (64, 1)):
        m = TransformerForDiffusion(2, 2, 16, 2, 20, n_layer=L, n_head=4, n_emb=E)
        sizes["%d_%d" % (E, L)] = sum(p.numel() for p in m.parameters())
    with h5py.File(path, "a") as f:
        for k, v in sizes.items():
            f.attrs["params_" + k] = v


def write_sched(path):
    """diffusers' DDPMScheduler(100, squaredcos_cap_v2) arithmetic written out in numpy: betas in
    float64 stored as float32, alphas_cumprod as a float32 cumprod; and one reverse step
    (clip_sample, fixed_small) and one DDIM step computed in float64."""
    T = 100
    abar = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = np.array([min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)], np.float32)
    ac = np.cumprod(1.0 - betas, dtype=np.float32)
    x, eps = rand(64), rand(64)
    with h5py.File(path, "w") as f:
        f["alphas_cumprod"] = ac
        f["x"], f["eps"] = x, eps
        for t in (99, 50, 1, 0):
            a, ap = float(ac[t]), float(ac[t - 1]) if t > 0 else 1.0
            b = 1 - a / ap
            x0 = np.clip((x.astype(np.float64) - math.sqrt(1 - a) * eps) / math.sqrt(a), -1, 1)
            mean = math.sqrt(ap) * b / (1 - a) * x0 + math.sqrt(a / ap) * (1 - ap) / (1 - a) * x
            f["mean_%d" % t] = mean.astype(np.float32)
            f["mean_%d" % t].attrs["sigma"] = math.sqrt(max((1 - ap) / (1 - a) * b, 1e-20)) if t > 0 else 0.0
        t, tp = 90, 80
        a, ap = float(ac[t]), float(ac[tp])
        x0 = np.clip((x.astype(np.float64) - math.sqrt(1 - a) * eps) / math.sqrt(a), -1, 1)
        f["ddim_90_80"] = (math.sqrt(ap) * x0 + math.sqrt(1 - ap) * eps).astype(np.float32)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    # ops, unet and sched share one random stream (regenerate them together); transformer has its own.
    which = sys.argv[2:] or ["ops", "unet", "sched", "transformer"]
    for name in which:
        globals()["write_" + name](out + "/" + name + ".h5")
        print("wrote", out + "/" + name + ".h5")
