#!/usr/bin/python3
"""Markdown tables from `tsdp bench spec --json` (one per thread count), standard library only.

    /usr/bin/python3 scripts/spec_table.py bench_spec.json
"""
import json
import sys


def main():
    j = json.load(open(sys.argv[1]))
    for th in j["threads"]:
        n = th["threads"]
        rows = [r for r in j["rows"] if r["threads"] == n]
        b = th["bound"]
        v = " / ".join("%.3g" % x for x in th["verify_ms"])
        print("#### %d thread%s, %d windows (%s)\n" % (n, "s" if n > 1 else "", j["windows"], j["ckpt"]))
        print("Target call at batch 1..%d, ms: %s; drafter call %.4f ms." % (len(th["verify_ms"]), v, th["drafter_ms"]))
        sd = th["bound"]["speedup_with_drafter"]
        print("Bound (free drafter, all drafts accepted): block %d, %.2f ms per chunk, **%.2fx** DDPM%s; "
              "best speculative row reaches %.0f%% of it.\n" % (b["block"], b["ms_per_chunk"], b["speedup"],
              "" if sd is None else " (%.2fx with this drafter's calls)" % sd, 100 * b["best_spec_fraction"]))
        print("| sampler | ms per chunk | draft / verify / other ms | target calls | drafter calls | acceptance | vs DDPM |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            split = "" if r["draft_ms"] is None else "%.1f / %.1f / %.1f" % (r["draft_ms"], r["verify_ms"], r["other_ms"])
            acc = "" if r["acceptance"] is None else "%.1f%%" % (100 * r["acceptance"])
            print("| %s | %.2f | %s | %.1f | %.1f | %s | %.2fx |" % (r["name"], r["ms_per_chunk"], split,
                  r["target_calls_per_chunk"], r["drafter_calls_per_chunk"], acc, r["speedup_vs_ddpm"]))
        print()


if __name__ == "__main__":
    main()
