#!/usr/bin/python3
"""A small robomimic-layout low-dim dataset of a task that is not Push-T: a 2-D point mass
reaching a goal around a round obstacle that sits between start and goal, passing it on the
left or on the right (chosen at random per demo, so the action distribution is bimodal).

    /usr/bin/python3 scripts/make_robomimic_toy.py OUT.h5 [--demos 50] [--seed 0]

Layout (robomimic's, float64 as robomimic writes it; tsdp reads any float type):
    data                      attrs: total (steps), env_args (JSON text)
    data/demo_N               attrs: num_samples
    data/demo_N/actions       (T, 2)  commanded position of the next step (the workspace is [-1, 1]^2)
    data/demo_N/obs/robot0_eef_pos  (T, 2)
    data/demo_N/obs/robot0_eef_vel  (T, 2)
    data/demo_N/obs/goal_pos        (T, 2)
    data/demo_N/obs/obstacle_pos    (T, 2)
    data/demo_N/rewards, dones      (T,)
    mask/train, mask/valid    demo names (robomimic's filter keys; tsdp makes its own split)
Deterministic from --seed (numpy's PCG64). Written through a temporary file and renamed.
"""
import argparse
import json
import os

import h5py
import numpy as np


def demo(rng):
    start = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.9, -0.7)])
    goal = np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.7, 0.9)])
    obst = (start + goal) / 2 + rng.normal(0, 0.05, 2)
    d = goal - start
    perp = np.array([-d[1], d[0]]) / np.linalg.norm(d)
    side = 1.0 if rng.random() < 0.5 else -1.0            # the mode: pass left or right
    via = obst + side * perp * rng.uniform(0.35, 0.45)
    pos, vel = start.copy(), np.zeros(2)
    step_len = rng.uniform(0.02, 0.026)                    # the demonstrator's speed
    rows, target, t = [], via, 0
    while True:
        if target is via and np.linalg.norm(via - pos) < 0.1:
            target = goal
        to = target - pos
        dist = np.linalg.norm(to)
        cmd = pos + (to if dist < step_len else to / dist * step_len) + rng.normal(0, 0.004, 2)
        cmd = np.clip(cmd, -1, 1)
        rows.append((pos.copy(), vel.copy(), cmd))
        # first-order plant following the commanded position
        new = pos + 0.7 * (cmd - pos) + 0.2 * vel
        vel, pos = new - pos, new
        t += 1
        if (target is goal and np.linalg.norm(goal - pos) < 0.02) or t >= 250:
            break
    for _ in range(5):                                     # hold at the goal a few steps
        rows.append((pos.copy(), vel.copy(), goal.copy()))
        new = pos + 0.7 * (goal - pos) + 0.2 * vel
        vel, pos = new - pos, new
    T = len(rows)
    return {"robot0_eef_pos": np.array([r[0] for r in rows]), "robot0_eef_vel": np.array([r[1] for r in rows]),
            "goal_pos": np.tile(goal, (T, 1)), "obstacle_pos": np.tile(obst, (T, 1))}, np.array([r[2] for r in rows])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--demos", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    tmp = a.out + ".tmp-%d" % os.getpid()
    total = 0
    try:
        with h5py.File(tmp, "w") as f:
            g = f.create_group("data")
            names = []
            for i in range(a.demos):
                obs, act = demo(rng)
                T = len(act)
                dg = g.create_group("demo_%d" % i)
                dg.attrs["num_samples"] = np.int64(T)
                dg.create_dataset("actions", data=act.astype(np.float64))
                for k, v in obs.items():
                    dg.create_dataset("obs/" + k, data=v.astype(np.float64))
                r = np.zeros(T)
                r[-1] = 1.0
                dg.create_dataset("rewards", data=r)
                dg.create_dataset("dones", data=(r > 0).astype(np.int64))
                names.append("demo_%d" % i)
                total += T
            g.attrs["total"] = np.int64(total)
            g.attrs["env_args"] = json.dumps({"env_name": "PointMassReach", "type": 0,
                                              "env_kwargs": {"obstacle_radius": 0.2, "seed": a.seed}})
            nval = max(1, a.demos // 10)
            dt = h5py.string_dtype()
            f.create_dataset("mask/train", data=np.array(names[:-nval], dtype=object), dtype=dt)
            f.create_dataset("mask/valid", data=np.array(names[-nval:], dtype=object), dtype=dt)
        os.replace(tmp, a.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print("wrote %s: %d demos, %d steps, obs robot0_eef_pos, robot0_eef_vel, goal_pos, obstacle_pos (2 each), "
          "actions 2" % (a.out, a.demos, total))


if __name__ == "__main__":
    main()
