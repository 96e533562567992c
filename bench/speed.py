"""Speed and memory benchmark: MMDSR against the floor and the ML-GCN head.

For each backbone@size, every head is built on the same backbone
(`weights=None`: speed does not depend on the weights), compiled with the
training recipe (SGD parameter groups, BCE) and fed the same fixed batch of
80-class data. In one process, after a warm-up call (its time is reported as
"first call": tracing and compilation), the heads are timed in interleaved
rounds so that a drift of the machine hits them alike; a figure is the median
step time. Heads:

- `floor`: backbone + global average pooling + Dense (`build_baseline("gap")`);
- `mlgcn`: GMP + ML-GCN's static-graph classifier (`build_baseline("mlgcn")`);
- `mmdsr`, and its ablations `no_cross_layer`, `no_dual_branch`, `no_graph`:
  the cost of a module is the MMDSR step time minus that of its ablation.

`--xla off on` (the default) times every head without XLA, then the floor
and MMDSR with it; on a CPU XLA is much slower for depthwise backbones
(Keras' `jit_compile="auto"` leaves it off there). JAX always uses XLA.

Peak memory of a training step (`--memory-heads`) is measured per head in a
fresh subprocess: on a GPU the framework's peak allocation, on the CPU the
growth of the process' peak resident memory over its size before the model
was built. `--pipeline` also measures the tf.data input pipeline (decode +
MultiScaleCrop + flip, on real images) alone and feeding `model.fit`.

Usage:

    python bench/speed.py                         # ResNet-50@448 and Lite0@224, CPU
    python bench/speed.py --configs efficientnet_lite0@224 --heads floor mmdsr --rounds 1
    KERAS_BACKEND=jax python bench/speed.py --configs resnet101@448 --heads floor mmdsr \
        --modes train --mixed-precision bfloat16 --batch-size 32      # a GPU
"""

import argparse
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import time

import keras
import numpy as np

from mmdsr_keras import build_baseline, build_mmdsr, ml_gcn_label_prior
from mmdsr_keras.training import TrainingConfig, compile_for_training

NUM_CLASSES = 80
HEADS = ("floor", "mlgcn", "mmdsr", "no_cross_layer", "no_dual_branch", "no_graph")
ABLATED_MODULE = {
    "no_cross_layer": ("cross-layer attention", {"cross_layer": False}),
    "no_dual_branch": ("dual-branch cross-attention", {"dual_branch": False}),
    "no_graph": ("graph (dynamic + GCN)", {"graph": "none"}),
}
DEFAULT_COCO = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco-mini"


def parse_config(text):
    """`"resnet50@448"` -> ("resnet50", 448)."""
    backbone, _, size = text.partition("@")
    if not size.isdigit():
        raise SystemExit(f"--configs: {text!r} is not BACKBONE@SIZE (e.g. resnet50@448).")
    return backbone, int(size)


def fixed_batch(batch_size, image_size, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
    labels = (rng.random((batch_size, NUM_CLASSES)) < 0.05).astype("float32")
    return images, labels


def build_head(head, backbone, image_size):
    rng = np.random.default_rng(1)
    labels = (rng.random((500, NUM_CLASSES)) < 0.05).astype("float32")
    prior = ml_gcn_label_prior(labels, normalization="symmetric" if head == "mlgcn" else "row")
    common = dict(num_classes=NUM_CLASSES, backbone=backbone, image_size=image_size,
                  weights=None)
    if head == "floor":
        return build_baseline("gap", **common)
    if head == "mlgcn":
        return build_baseline("mlgcn", label_prior=prior, **common)
    options = ABLATED_MODULE[head][1] if head in ABLATED_MODULE else {}
    return build_mmdsr(label_prior=prior, **common, **options)


def compiled_head(head, args, backbone, image_size, xla):
    model = build_head(head, backbone, image_size)
    config = TrainingConfig(epochs=1, batch_size=args.batch_size, jit_compile=xla)
    compile_for_training(model, config, steps_per_epoch=10_000)
    return model


def timed(call):
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def step_calls(model, images, labels):
    return {
        "infer": lambda: model.predict_on_batch(images),
        "train": lambda: model.train_on_batch(images, labels),
    }


def time_heads(heads, args, backbone, image_size, xla):
    """Median step time (s) per head and mode, heads timed in interleaved rounds."""
    images, labels = fixed_batch(args.batch_size, image_size)
    images, labels = keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(labels)
    calls, result = {}, {}
    for head in heads:
        model = compiled_head(head, args, backbone, image_size, xla)
        calls[head] = step_calls(model, images, labels)
        result[head] = {"params": int(model.count_params())}
        for mode in args.modes:
            result[head][f"{mode}_first_call_s"] = timed(calls[head][mode])
            for _ in range(args.warmup):
                calls[head][mode]()
        print(f"  built and warmed up {head}", flush=True)
    samples = {(head, mode): [] for head in heads for mode in args.modes}
    for _ in range(args.rounds):
        for head in heads:
            for mode in args.modes:
                samples[head, mode] += [timed(calls[head][mode]) for _ in range(args.steps)]
    for (head, mode), times in samples.items():
        step = statistics.median(times)
        result[head][f"{mode}_step_s"] = step
        result[head][f"{mode}_images_per_s"] = args.batch_size / step
    return result


def current_rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_device_bytes():
    """Peak accelerator allocation of this process, or None on the CPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.local_devices()[0]
        if device.platform != "cpu":
            return device.memory_stats()["peak_bytes_in_use"]
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated()
    elif backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return tf.config.experimental.get_memory_info("GPU:0")["peak"]
    return None


def reset_peak_rss():
    """Resets the kernel's peak-RSS mark (Linux); False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_worker(args):
    """Runs in a fresh process: peak memory of one head's training steps.

    On the CPU: the peak resident size during two training steps minus the
    size before the model was built (weights, optimizer state, activations,
    gradients). The first step (tracing, compiling) runs before the peak mark
    is reset, so the compiler's transient memory is not counted.
    """
    backbone, image_size = parse_config(args.configs[0])
    images, labels = fixed_batch(args.batch_size, image_size)
    before = current_rss_bytes()
    model = compiled_head(args.memory_worker, args, backbone, image_size, args.xla[0])
    model.train_on_batch(images, labels)
    reset = reset_peak_rss()
    for _ in range(2):
        model.train_on_batch(images, labels)
    device_peak = peak_device_bytes()
    if device_peak is not None:
        peak, kind = device_peak, "device peak allocation"
    else:
        peak = peak_rss_bytes() - before
        kind = "host RSS growth" + ("" if reset else ", compile included")
    print(json.dumps({"peak_bytes": int(peak), "kind": kind}))


def measure_memory(head, args, config, xla):
    command = [sys.executable, __file__, "--memory-worker", head, "--configs", config,
               "--batch-size", str(args.batch_size), "--xla", xla]
    if args.mixed_precision:
        command += ["--mixed-precision", args.mixed_precision]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure_pipeline(args, image_size, model):
    """Input-pipeline images/s alone, and MMDSR training fed by it vs by a fixed batch."""
    import tensorflow as tf

    from mmdsr_keras.data.coco_json import load_coco_json

    root = pathlib.Path(args.coco_mini)
    data = load_coco_json(root / "train2017" / "images",
                          root / "train2017" / "annotations" / "instances.json",
                          keep_unlabeled=False)
    stream = data.to_tf_dataset(image_size, args.batch_size, training=True, seed=0).repeat()
    iterator = iter(stream)
    next(iterator)
    batches = args.pipeline_batches
    seconds = timed(lambda: [next(iterator) for _ in range(batches)])
    alone = batches * args.batch_size / seconds

    steps = max(3, args.rounds * args.steps)
    images, labels = fixed_batch(args.batch_size, image_size)
    fixed = tf.data.Dataset.from_tensors((images, labels)).repeat()
    rates = {}
    for name, dataset in (("fixed batch", fixed), ("tf.data pipeline", stream)):
        model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
        seconds = timed(lambda: model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0))
        rates[name] = steps * args.batch_size / seconds
    return {"pipeline_alone_images_per_s": alone,
            "fit_fixed_batch_images_per_s": rates["fixed batch"],
            "fit_pipeline_images_per_s": rates["tf.data pipeline"]}


def print_speed_table(config, xla, result, modes):
    floor = result.get("floor")
    print(f"\n### {config}, XLA {xla}\n")
    header = "| head | params |"
    rule = "|---|---|"
    for mode in modes:
        header += f" {mode} img/s | {mode} x floor | {mode} first call s |"
        rule += "---|---|---|"
    print(header)
    print(rule)
    for head, row in result.items():
        line = f"| {head} | {row['params']:,} |"
        for mode in modes:
            ratio = (row[f"{mode}_step_s"] / floor[f"{mode}_step_s"]) if floor else float("nan")
            line += (f" {row[f'{mode}_images_per_s']:.2f} | {ratio:.3f} |"
                     f" {row[f'{mode}_first_call_s']:.1f} |")
        print(line)
    if "mmdsr" in result and floor:
        for head, (module, _) in ABLATED_MODULE.items():
            if head not in result:
                continue
            for mode in modes:
                cost = result["mmdsr"][f"{mode}_step_s"] - result[head][f"{mode}_step_s"]
                share = 100 * cost / floor[f"{mode}_step_s"]
                print(f"- {module}, {mode}: {1000 * cost:+.1f} ms/step "
                      f"({share:+.1f}% of the floor's step)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["resnet50@448", "efficientnet_lite0@224"])
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS))
    parser.add_argument("--modes", nargs="+", choices=("infer", "train"),
                        default=["infer", "train"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--xla", nargs="+", choices=("on", "off"), default=["off", "on"],
                        help="first: all heads; further settings: --xla-heads only")
    parser.add_argument("--xla-heads", nargs="+", default=["floor", "mmdsr"])
    parser.add_argument("--mixed-precision", choices=("float16", "bfloat16"))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per head per round")
    parser.add_argument("--memory-heads", nargs="*", default=["floor", "mlgcn", "mmdsr"])
    parser.add_argument("--pipeline", action="store_true", help="also time the tf.data pipeline")
    parser.add_argument("--pipeline-batches", type=int, default=40)
    parser.add_argument("--coco-mini", default=os.environ.get("MMDSR_COCO_MINI", DEFAULT_COCO))
    parser.add_argument("--json", help="also write all figures to this (new) file")
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.json and os.path.exists(args.json):
        raise SystemExit(f"--json {args.json}: the file exists; give a new path.")
    if keras.backend.backend() == "jax" and "off" in args.xla:
        print("JAX always compiles with XLA: measuring XLA on only.")
        args.xla = ["on"]
    keras.config.set_dtype_policy(
        f"mixed_{args.mixed_precision}" if args.mixed_precision else "float32")
    if args.memory_worker:
        args.xla = [{"on": True, "off": False}[x] for x in args.xla]
        return memory_worker(args)

    print(f"Keras {keras.__version__} ({keras.backend.backend()}), {platform.machine()}, "
          f"{os.cpu_count()} CPUs, batch {args.batch_size}, precision "
          f"{args.mixed_precision or 'float32'}, {args.rounds} rounds x {args.steps} steps",
          flush=True)
    report = {"batch_size": args.batch_size, "backend": keras.backend.backend(),
              "precision": args.mixed_precision or "float32", "results": {}}
    for config in args.configs:
        backbone, image_size = parse_config(config)
        for index, xla in enumerate(args.xla):
            heads = args.heads if index == 0 else [h for h in args.heads if h in args.xla_heads]
            keras.utils.clear_session(free_memory=True)
            result = time_heads(heads, args, backbone, image_size, xla == "on")
            print_speed_table(config, xla, result, args.modes)
            report["results"][f"{config} xla={xla}"] = result
        memory = {}
        for head in [h for h in args.memory_heads if h in args.heads]:
            memory[head] = measure_memory(head, args, config, args.xla[0])
        if memory:
            floor = memory.get("floor", {}).get("peak_bytes")
            print(f"\nPeak training memory, {config} ({next(iter(memory.values()))['kind']}):")
            for head, row in memory.items():
                ratio = f", {row['peak_bytes'] / floor:.3f} x floor" if floor else ""
                print(f"- {head}: {row['peak_bytes'] / 2**20:.0f} MiB{ratio}")
            report["results"][f"{config} memory"] = memory
        if args.pipeline:
            keras.utils.clear_session(free_memory=True)
            model = compiled_head("mmdsr", args, backbone, image_size, args.xla[0] == "on")
            pipeline = measure_pipeline(args, image_size, model)
            print(f"\nInput pipeline, {config}: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in pipeline.items()))
            report["results"][f"{config} pipeline"] = pipeline
    if args.json:
        with open(args.json, "x") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
