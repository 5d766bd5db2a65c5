"""Headline figures of every ``benchmarks/results/*.json`` as a Markdown table (the one in benchmarks/README.md).

    python benchmarks/summarize.py            # print the table
    python benchmarks/summarize.py --write    # also replace the table between the markers in benchmarks/README.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import RESULTS, ROOT

README = ROOT / "benchmarks" / "README.md"
BEGIN, END = "<!-- results-table:begin -->", "<!-- results-table:end -->"


def _f(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"


def _machine(d: dict) -> str:
    m = d.get("machine") or {}
    cpu = m.get("cpu")
    cores = m.get("cores") or m.get("cpus")
    if cpu:
        return f"{cpu}, {cores} cores" if cores else cpu
    return f"not recorded ({cores} CPUs)" if cores else "not recorded"


def _date(d: dict) -> str:
    for key in ("date", "when", "measured_at"):
        if d.get(key):
            return str(d[key])[:10]
    return "not recorded"


def data_throughput(d: dict) -> str:
    t = d["throughput"]
    return (f"embedded dataset, T={d['time_steps']}, 1 thread: cold {_f(t['cold'])}, cached {_f(t['cached'])}, "
            f"DataLoader {_f(t['cached_dataloader'])}, two views {_f(t['two_view'])} samples/s")


def energy(d: dict) -> str:
    parts = []
    shown = [r for r in d["results"] if "neuromoco" in Path(r["model"]).stem] or d["results"][:2]
    for r in shown:
        e = r["energy_per_inference_uj"]
        ann = e["45nm"]["ann"]
        parts.append(f"{Path(r['model']).stem}: {_f(r['per_inference']['synops'])} synops, Loihi "
                     f"{_f(e['loihi']['snn'])} uJ, 45 nm SNN {_f(e['45nm']['snn'])} uJ"
                     + (f" vs ANN {_f(ann)} uJ" if ann is not None else ""))
    more = len(d["results"]) - len(shown)
    return "; ".join(parts) + " per inference" + (f" (and {more} more graphs in the file)" if more else "")


def onnx_throughput(d: dict) -> str:
    r = d["results"]
    names = [("pytorch_reference", "reference"), ("onnxruntime_fp32", "ORT fp32"), ("onnxruntime_int8", "ORT int8"),
             ("onnxruntime_fp32_sequence", "ORT fp32 Scan")]
    rates = ", ".join(f"{label} {_f(r[k]['throughput_samples_per_s'])}" for k, label in names if k in r)
    lat = r.get("onnxruntime_fp32", {}).get("latency_per_step_ms_batch1")
    agree = d.get("parity_vs_reference", {}).get("onnxruntime_int8", {}).get("prediction_agreement")
    out = f"{d['samples']} samples, T={d['time_steps']}, batch {d['batch']}: {rates} samples/s"
    if lat is not None:
        out += f"; fp32 step latency {_f(lat)} ms"
    if agree is not None:
        out += f"; int8 agreement {_f(agree)}"
    return out


def lava_throughput(d: dict) -> str:
    f = d["lava"]["float"]
    fx = d["lava"].get("fixed", {})
    out = (f"T={d['time_steps']}: reference {_f(d['reference_float32']['samples_per_s'])}, "
           f"Lava float per-sample runs {_f(f['per_sample_runs']['samples_per_s'])}, "
           f"time-multiplexed {_f(f['time_multiplexed']['samples_per_s'])},"
           f" tiled {_f(f['tiled']['samples_per_s'])} samples/s")
    if "time_multiplexed" in fx:
        out += f"; fixed-point time-multiplexed {_f(fx['time_multiplexed']['samples_per_s'])} samples/s"
    agree = min(v["prediction_agreement"] for p in d["lava"].values() for v in p.values()
                if isinstance(v, dict) and "prediction_agreement" in v)
    return out + f"; lowest prediction agreement with the float64 reference {_f(agree)}"


def ssl_embedded(d: dict) -> str:
    a, s, st = d["accuracy_test_top1"], d["settings"], d["stages"]
    return (f"{d['model']}, T={d['time_steps']}, {d['label_fraction']:.0%} labels, {s['pretrain_epochs']} pretrain / "
            f"{s['finetune_epochs']} finetune epochs: top-1 (last) linear {_f(a['linear']['last'])}, finetune "
            f"{_f(a['finetune']['last'])}, supervised {_f(a['supervised']['last'])}; pretrain "
            f"{_f(st['pretrain']['samples_per_s'])} samples/s, peak RSS {_f(st['pretrain']['peak_rss_mib'])} MiB; "
            f"{_f(d['total_wall_s'])} s in all")


def spikingjelly_compare(d: dict) -> str:
    r, q, s = d["results"], d["ratio_project_over_spikingjelly"], d["sanity_check"]
    p, j = r.get("project", r.get("project_norse")), r["spikingjelly"]  # "project_norse": files before the fused LIF
    sj = d["machine"].get("spikingjelly", "?")
    return (f"cnn3-34 (vgg34), T={d['time_steps']}, batch {d['batch']}, {d['machine'].get('torch_threads')} threads, "
            f"SpikingJelly {sj}: train {_f(p['train_samples_per_s'])} (project) vs {_f(j['train_samples_per_s'])} "
            f"(SJ) samples/s, ratio {q['train']:.2f}; forward {_f(p['forward_samples_per_s'])} vs "
            f"{_f(j['forward_samples_per_s'])}, ratio {q['forward']:.2f}; spikes identical: "
            f"{s['spikes_identical'] and s['eval_mode_spikes_identical']}, logits max diff "
            f"{_f(s['logits_max_abs_diff'])}")


def fixed_point_speed(d: dict) -> str:
    parts = []
    for name, g in d["graphs"].items():
        a = g["agreement"]
        exact = a["prediction_agreement"] == 1.0 and a["identical_spikes_fraction"] == 1.0 and a["identical_outputs"]
        parts.append(f"{name} T={g['time_steps']}: reference-fixed {_f(g['reference_fixed']['samples_per_s'])} vs "
                     f"lava-fixed {_f(g['lava_fixed']['samples_per_s'])} samples/s "
                     f"({g['speedup_samples_per_s']:.0f}x), "
                     f"bit-exact on {a['samples_compared']} samples: {exact}")
    return "; ".join(parts)


SUMMARIES = {"data_throughput": data_throughput, "energy": energy, "onnx_throughput": onnx_throughput,
             "lava_throughput": lava_throughput, "ssl_embedded": ssl_embedded,
             "spikingjelly_compare": spikingjelly_compare, "fixed_point_speed": fixed_point_speed}


def table(results: Path = RESULTS) -> str:
    rows = ["| file | headline figures | machine | date |", "|---|---|---|---|"]
    for path in sorted(results.glob("*.json")):
        d = json.loads(path.read_text())
        kind = next((k for k in sorted(SUMMARIES, key=len, reverse=True) if path.stem.startswith(k)), None)
        try:
            text = SUMMARIES[kind](d) if kind else "(no summary for this file)"
        except (KeyError, TypeError, ValueError) as err:
            text = f"(could not summarise: {type(err).__name__} {err})"
        rows.append(f"| `{path.name}` | {text} | {_machine(d)} | {_date(d)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"replace the table in {README.relative_to(ROOT)}")
    args = ap.parse_args(argv)
    text = table()
    print(text)
    if args.write:
        doc = README.read_text()
        if BEGIN not in doc or END not in doc:
            raise SystemExit(f"{README}: markers {BEGIN} / {END} not found")
        head, rest = doc.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        README.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
        print(f"wrote the table into {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
