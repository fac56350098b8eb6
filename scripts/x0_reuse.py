#!/usr/bin/env python3
"""How fast does the target's clean-chunk estimate move along its own DDPM chains? For each
diffusion step t of chains on a few dataset windows (PyTorch copy of the base, scripts/
torch_unet.py through bench_torch.load), the predicted acceptance 2 Phi(-|Delta|/2) of a draft
whose eps is the target's eps from k steps earlier ("eps" reuse: the frozen drafter) or whose
eps gives the target's clean estimate x0 from k steps earlier ("x0" reuse: the x0 drafter),
averaged over t ranges. docs/math.md §4 quotes it.
Usage: scripts/x0_reuse.py CKPT.h5 DATA.h5 [TSDP]"""
import math
import tempfile
import os
import subprocess
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import load
torch.set_num_threads(1)
if len(sys.argv) < 3:
    sys.exit(__doc__)
CKPT, DATA = sys.argv[1], sys.argv[2]
TSDP = sys.argv[3] if len(sys.argv) > 3 else 'build/tsdp'
net, cfg, _, A = load(CKPT)
conds=[]
for idx in [500, 3000, 7000, 12000, 20000]:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([TSDP, 'sample', '--ckpt', CKPT, '--data', DATA, '--index', str(idx), '--n', '1', '--sampler', 'ddpm',
                        '--seed', '1', '--out', d + '/s.h5', '--threads', '1'], check=True, capture_output=True)
        with h5py.File(d + '/s.h5', 'r') as f:
            conds.append(torch.tensor(f['cond'][()]))
T=100
abar=lambda s: math.cos((s+0.008)/1.008*math.pi/2)**2
betas=torch.tensor([min(1-abar((i+1)/T)/abar(i/T),0.999) for i in range(T)],dtype=torch.float64)
ac=torch.cumprod(1-betas,0).float()
n=16
def coef(t):
    a=ac[t]; ap=ac[t-1] if t>0 else torch.tensor(1.0); b=1-a/ap
    return a,ap,b
def x0of(x,eps,t):
    a,_,_=coef(t); return ((x-(1-a).sqrt()*eps)/a.sqrt()).clamp(-1,1)
def meanof(x,x0,t):
    a,ap,b=coef(t); return ap.sqrt()*b/(1-a)*x0+(a/ap).sqrt()*(1-ap)/(1-a)*x
def sig(t):
    a,ap,b=coef(t); return ((1-ap)/(1-a)*b).sqrt()
ks=[1,2,4,8]
acc={(m,k):np.zeros(T) for m in ['eps','x0'] for k in ks}
g=torch.Generator().manual_seed(0)
for c in conds:
    cc=c.expand(n,-1)
    x=torch.randn(n,16,A,generator=g)
    E={}; X0={}
    with torch.no_grad():
      for t in range(T-1,-1,-1):
        e=net(x,torch.full((n,),float(t)),cc); E[t]=e; x0=x0of(x,e,t); X0[t]=x0
        m=meanof(x,x0,t)
        if t>0:
          s=sig(t)
          for k in ks:
            if t+k<T:
              me=meanof(x,x0of(x,E[t+k],t),t)     # frozen eps from k steps back
              mx=meanof(x,X0[t+k],t)              # frozen x0 from k steps back
              for mode,mm in [('eps',me),('x0',mx)]:
                d=((mm-m).reshape(n,-1).norm(dim=1)/s).numpy()
                acc[(mode,k)][t]+=np.sum([math.erfc(v/2/math.sqrt(2)) for v in d])
          x=m+s*torch.randn(x.shape,generator=g)
for key in acc: acc[key]/= (n*len(conds))
for k in ks:
  for mode in ['eps','x0']:
    a=acc[(mode,k)]
    print(f"k={k} {mode:3s}: t1-9 {a[1:10].mean():.3f} t10-19 {a[10:20].mean():.3f} t20-49 {a[20:50].mean():.3f} t50-90 {a[50:91-k].mean():.3f}")
