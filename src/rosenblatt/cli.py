"""The ``rosenblatt`` command: ``train``, ``predict``, ``info``, ``experiment`` and ``bench``.

``rosenblatt train`` with no arguments trains the default model on the bundled digits, prints a
progress line per epoch and the test metrics, and writes ``history.csv``, ``curves.png``,
``model.safetensors``, ``metrics.json`` (and a resumable ``checkpoint.safetensors``) to
``runs/<timestamp>``; ``config.json`` there records the model and the preprocessing of its inputs,
so ``rosenblatt predict RUN_DIR --data ...`` (and ``rb.io.load_run``) can use it later. Errors are
reported as one line on stderr with a non-zero exit status (set ``ROSENBLATT_DEBUG=1`` to see the
traceback instead).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

OPTIMIZERS = {"adam": ("Adam", 3e-3), "adamw": ("AdamW", 3e-3), "sgd": ("SGD", 0.05), "rmsprop": ("RMSprop", 1e-3),
              "adagrad": ("Adagrad", 1e-2), "adadelta": ("Adadelta", 1.0)}
CHECKPOINT_NAME = "checkpoint.safetensors"
CONFIG_NAME = "config.json"


class UsageError(Exception):
    """A bad command line (reported in one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + message; we want one line
        raise UsageError(f"{self.prog}: {message}")


def default_model() -> str:
    """``"lenet5"`` when the CNN models are available, else ``"mlp"``."""
    try:
        from rosenblatt.models import MODELS
    except ImportError:
        return "mlp"
    return "lenet5" if "lenet5" in MODELS else "mlp"


def _build_parser() -> _Parser:
    parser = _Parser(prog="rosenblatt", description="rosenblatt: deep learning on NumPy with its own autodiff.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = sub.add_parser("train", help="train a model (default: on the bundled digits)",
                           description="Train a model and write history.csv, curves.png, model.safetensors "
                                       "and metrics.json to the output folder.")
    train.add_argument("--model", default=None,
                       help=f"a model of rb.models.MODELS, or 'mlp' (default: {default_model()} for images, "
                            "mlp for tables)")
    train.add_argument("--data", default=None,
                       help="digits | fashion-mnist[:DIR] | mnist:DIR | csv:PATH:TARGET (default: digits)")
    train.add_argument("--epochs", type=int, default=None, help="epochs (default: 15 on digits, 5 otherwise)")
    train.add_argument("--batch-size", type=int, default=None, help="batch size (default: 64)")
    train.add_argument("--optimizer", default=None, choices=sorted(OPTIMIZERS), help="optimiser (default: adam)")
    train.add_argument("--lr", type=float, default=None, help="learning rate (default depends on the optimiser)")
    train.add_argument("--seed", type=int, default=None, help="random seed (default: 0)")
    train.add_argument("--out", default=None, help="output folder (default: runs/<timestamp>)")
    train.add_argument("--resume", default=None, metavar="PATH",
                       help="continue a run from its checkpoint file or its output folder")
    train.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cpu)")
    train.add_argument("--limit", type=int, default=None, help="use only the first N training samples")
    predict = sub.add_parser("predict", help="predict with a model trained by `rosenblatt train`",
                             description="Apply a trained run (its model and recorded preprocessing) to new data "
                                         "and write one row per sample to a CSV file.")
    predict.add_argument("run", metavar="RUN_DIR", help="the output folder of `rosenblatt train`")
    predict.add_argument("--data", required=True,
                         help="PATH.npy (raw inputs) | csv:PATH[:TARGET] | digits | fashion-mnist[:DIR] | mnist:DIR "
                              "(the datasets: their test split)")
    predict.add_argument("--out", default=None, help="the CSV file to write (default: RUN_DIR/predictions.csv)")
    predict.add_argument("--batch-size", type=int, default=256, help="batch size (default: 256)")
    sub.add_parser("info", help="versions, backends and optional extras")
    experiment = sub.add_parser("experiment", help="run one of the lecture's experiments")
    experiment.add_argument("name", nargs="?", help="the experiment (see --list)")
    experiment.add_argument("--list", action="store_true", help="list the experiments")
    experiment.add_argument("--out", default=None, help="output folder (default: runs/experiments/NAME)")
    experiment.add_argument("--quick", action="store_true", help="a smaller run (seconds)")
    experiment.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    bench = sub.add_parser("bench", help="run the benchmarks (benchmarks/run.py) against PyTorch; its options "
                                         "(--quick, --filter NAME, --no-write, ...) pass through")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="arguments for benchmarks/run.py")
    return parser


# ----------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------


def _load_data(spec: str, seed: int) -> dict[str, Any]:
    """Train/val/test arrays for a ``--data`` spec; images come as NCHW."""
    from rosenblatt.data import datasets, train_val_test_split

    kind, _, rest = spec.partition(":")
    kind = kind.lower()
    if kind == "digits":
        if rest:
            raise UsageError(f"--data digits takes no path, got {spec!r}")
        x, y = datasets.load_digits(flatten=False)
        train, val, test = train_val_test_split(x, y, val=0.1, test=0.2, stratify=y, seed=seed)
        return {"train": train, "val": val, "test": test, "task": "classification", "num_classes": 10,
                "name": "digits"}
    if kind in ("fashion-mnist", "fashion_mnist", "fashionmnist", "mnist"):
        if kind == "mnist" and not rest:
            raise UsageError("--data mnist needs the folder of the IDX files: --data mnist:DIR")
        cls = datasets.MNIST if kind == "mnist" else datasets.FashionMNIST
        root = rest or None
        train_set, test_set = cls(root, train=True), cls(root, train=False)
        train, val, _ = train_val_test_split(train_set.data, train_set.targets, val=0.1, test=0,
                                             stratify=train_set.targets, seed=seed)
        return {"train": train, "val": val, "test": (test_set.data, test_set.targets), "task": "classification",
                "num_classes": 10, "name": kind}
    if kind == "csv":
        path, sep, target = rest.rpartition(":")
        if not sep or not path or not target:
            raise UsageError(f"--data csv needs a path and a target column: csv:PATH:TARGET, got {spec!r}")
        x, y = datasets.from_csv(path, target=int(target) if target.lstrip("-").isdigit() else target)
        classification = y.dtype.kind == "i"
        if classification:
            if y.min() < 0:
                raise ValueError(f"--data {spec}: class labels must be >= 0, got {y.min()}")
            counts = np.bincount(y)
            stratify = y if counts[counts > 0].min() >= 3 else None
        else:
            stratify = None
        train, val, test = train_val_test_split(x, y, val=0.15, test=0.15, stratify=stratify, seed=seed)
        mean, std = train[0].mean(axis=0), train[0].std(axis=0) + 1e-8  # standardise with training statistics
        train, val, test = ((((p[0] - mean) / std).astype(np.float32), p[1]) for p in (train, val, test))
        data = {"train": train, "val": val, "test": test, "name": f"csv:{os.path.basename(path)}",
                "standardize": {"mean": mean.tolist(), "std": std.tolist()}}
        if classification:
            data.update(task="classification", num_classes=int(y.max()) + 1)
        else:
            data.update(task="regression", num_classes=1, train=(train[0], train[1].reshape(-1, 1)),
                        val=(val[0], val[1].reshape(-1, 1)), test=(test[0], test[1].reshape(-1, 1)))
        return data
    raise UsageError(f"unknown --data {spec!r}: expected digits, fashion-mnist[:DIR], mnist:DIR or csv:PATH:TARGET")


def _upsample(x: np.ndarray, factor: int) -> np.ndarray:
    return x.repeat(factor, axis=2).repeat(factor, axis=3) if factor > 1 else x


def _build_model(name: str, data: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The model and the data reshaped for it (flat features for the MLP, images for CNNs)."""
    import rosenblatt.models as models

    registry = getattr(models, "MODELS", {})
    x = data["train"][0]
    classes = data["num_classes"]
    if name == "mlp" or (name not in registry and name == "mlp"):
        features = int(np.prod(x.shape[1:]))
        hidden = [128] if features <= 256 else [256, 128]
        sizes = [features, *hidden, classes]
        model = models.MLP(sizes)
        reshape = {k: (v[0].reshape(v[0].shape[0], -1), v[1]) for k, v in data.items() if k in ("train", "val", "test")}
        preprocessing = _preprocessing(data, upsample=1, flatten=x.ndim > 2)
        return model, {**data, **reshape, "model_config": {"sizes": sizes}, "preprocessing": preprocessing}
    if name not in registry:
        raise UsageError(f"unknown --model {name!r}; known: mlp, {', '.join(sorted(registry))}")
    if x.ndim != 4:
        raise UsageError(f"--model {name} needs images; --data {data['name']} gives tables of features: use --model mlp")
    channels, size = x.shape[1], x.shape[2]
    if name == "lenet5":
        factor = 2 if size < 12 else 1  # 8x8 digits -> 16x16, LeNet-5's smallest sensible input
        config = {"num_classes": classes, "in_channels": channels, "input_size": size * factor}
    else:
        factor = max(1, 32 // size) if size < 32 else 1  # the small-input (CIFAR) variants expect ~32x32
        config = {"num_classes": classes, "in_channels": channels, "small_input": True}
    model = models.get_model(name, **config)
    resized = {k: (_upsample(v[0], factor), v[1]) for k, v in data.items() if k in ("train", "val", "test")}
    preprocessing = _preprocessing(data, upsample=factor, flatten=False)
    return model, {**data, **resized, "model_config": config, "preprocessing": preprocessing}


def _preprocessing(data: dict[str, Any], upsample: int, flatten: bool) -> dict[str, Any]:
    """What is done to each raw input before the model sees it (``rb.io.run.preprocess`` applies it)."""
    record: dict[str, Any] = {"input_shape": list(data["train"][0].shape[1:])}
    if "standardize" in data:
        record["standardize"] = data["standardize"]
    return {**record, "upsample": int(upsample), "flatten": bool(flatten)}


def _resolve_resume(path: str) -> str:
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--resume: no checkpoint at '{path}'")
    return path


# The options that define a run: saved in config.json, and fixed once the run has started.
RUN_OPTIONS = ("model", "data", "batch_size", "optimizer", "lr", "seed", "limit")


def _read_config(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"--resume: cannot read '{path}' ({exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"--resume: '{path}' does not hold a JSON object")
    return config


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_options(values: dict[str, Any]) -> None:
    """Range checks of the options, one clear line each."""
    checks = [("model", lambda v: v is None or isinstance(v, str), "a model name"),
              ("data", lambda v: isinstance(v, str), "a data spec"),
              ("device", lambda v: isinstance(v, str), "a device name"),
              ("epochs", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
              ("batch_size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
              ("lr", lambda v: isinstance(v, (int, float)) and math.isfinite(v) and v > 0, "a finite number > 0"),
              ("seed", lambda v: isinstance(v, int) and 0 <= v < 2**63, "an integer >= 0"),
              ("limit", lambda v: v is None or (isinstance(v, int) and v >= 1), "an integer >= 1")]
    for name, valid, expected in checks:
        if not valid(values[name]):
            raise UsageError(f"{_option(name)} must be {expected}, got {values[name]!r}")


def _write_json(path: str, value: Any) -> None:
    from rosenblatt.serialization import atomic_write

    atomic_write(path, [(json.dumps(value, indent=2) + "\n").encode("utf-8")])


def _plot_atomically(history: Any, path: str) -> None:
    """Draw the curves to a temporary file and rename it, so a crash never leaves half a PNG."""
    from rosenblatt.serialization import TEMP_PREFIX

    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f"{TEMP_PREFIX}{os.urandom(6).hex()}-{name}")
    try:
        history.plot(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cmd_train(args: argparse.Namespace) -> int:
    """``rosenblatt train``.

    Every check (options, data, model, device, the checkpoint to resume and its agreement with the
    saved ``config.json``) runs before anything is written, so a failed start leaves no trace; a
    run whose loss stops being finite ends with a message and exit status 1, keeping the checkpoint
    of its last finite epoch.
    """
    import rosenblatt as rb
    from rosenblatt.io import load_checkpoint
    from rosenblatt.serialization import remove_stale_temporaries
    from rosenblatt.train import CSVLogger, ModelCheckpoint, ProgressBar, TerminateOnNaN, Trainer

    config: dict[str, Any] = {}
    checkpoint = resumed = None
    if args.resume:
        checkpoint = _resolve_resume(args.resume)
        resumed = load_checkpoint(checkpoint)  # the file is validated before anything else is done
        saved = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), CONFIG_NAME)
        if os.path.isfile(saved):
            config = _read_config(saved)
        for name in RUN_OPTIONS:  # a resumed run continues the same run: its options cannot change
            given = getattr(args, name)
            if given is not None and name in config and given != config[name]:
                raise UsageError(f"--resume: the run was started with {_option(name)} {config[name]}; it cannot "
                                 f"continue with {_option(name)} {given} (start a new run instead)")
    pick = lambda key, default: getattr(args, key) if getattr(args, key) is not None else config.get(key, default)  # noqa: E731
    optimizer_name = pick("optimizer", "adam")
    if optimizer_name not in OPTIMIZERS:
        raise UsageError(f"unknown --optimizer {optimizer_name!r}; known: {', '.join(sorted(OPTIMIZERS))}")
    data_spec = pick("data", "digits")
    values = {"model": pick("model", None), "data": data_spec, "batch_size": pick("batch_size", 64),
              "optimizer": optimizer_name, "lr": pick("lr", OPTIMIZERS[optimizer_name][1]), "seed": pick("seed", 0),
              "limit": pick("limit", None), "device": pick("device", "cpu"),
              "epochs": pick("epochs", 15 if str(data_spec).partition(":")[0].lower() == "digits" else 5)}
    _check_options(values)
    seed, epochs, batch_size, lr = values["seed"], values["epochs"], values["batch_size"], values["lr"]
    out = args.out or (os.path.dirname(os.path.abspath(checkpoint)) if args.resume
                       else os.path.join("runs", time.strftime("%Y%m%d-%H%M%S")))
    if resumed is not None:
        done = resumed["epoch"]
        # Equal counts finish a run that was killed after its last checkpoint but before its outputs.
        if epochs < done or (epochs == done and os.path.isfile(os.path.join(out, "metrics.json"))):
            raise UsageError(f"--resume: the run has already completed {done} epochs; pass --epochs N with "
                             f"N > {done} to train it further")

    rb.manual_seed(seed)
    main = rb.distributed.is_main_process()  # under `mpiexec -n N`, rank 0 alone prints and writes files
    data = _load_data(data_spec, seed)
    if values["limit"] is not None:
        data["train"] = tuple(a[:values["limit"]] for a in data["train"])
    model_name = values["model"]
    if model_name is None:  # tables go to the MLP, images to the default CNN
        model_name = default_model() if data["train"][0].ndim == 4 else "mlp"
    values["model"] = model_name
    model, data = _build_model(model_name, data)
    opt_class = getattr(rb.optim, OPTIMIZERS[optimizer_name][0])
    opt_kwargs = {"lr": lr, "momentum": 0.9} if optimizer_name == "sgd" else {"lr": lr}
    optimizer = opt_class(model.parameters(), **opt_kwargs)
    classification = data["task"] == "classification"
    loss = rb.nn.CrossEntropyLoss() if classification else rb.nn.MSELoss()
    metrics = ("accuracy",) if classification else ("mae", "r2")
    nan_guard = TerminateOnNaN()
    callbacks = [nan_guard, ProgressBar(), CSVLogger(os.path.join(out, "history.csv")),
                 ModelCheckpoint(os.path.join(out, CHECKPOINT_NAME), save_best_only=False)]
    trainer = Trainer(model, loss, optimizer, metrics=metrics, callbacks=callbacks, device=values["device"])
    if resumed is not None:  # the checkpoint must fit this model and optimiser before anything is written
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
    run_config = {**{name: values[name] for name in ("model", "data", "epochs", *RUN_OPTIONS[2:], "device")},
                  "model_config": data["model_config"]}
    # what `rosenblatt predict` and rb.io.load_run need to use the model on new raw inputs
    run_config.update(task=data["task"], num_classes=data["num_classes"], preprocessing=data["preprocessing"])

    if main:  # every check has passed: now the run folder is written
        os.makedirs(out, exist_ok=True)
        stale = remove_stale_temporaries(out)
        if stale:
            print(f"note: removed {len(stale)} temporary file{'s' * (len(stale) > 1)} left by an interrupted "
                  f"write in {out}", file=sys.stderr)
        if resumed is not None and resumed["history"] is not None:
            # The CSV may hold epochs newer than the checkpoint (a crash between the two writes).
            resumed["history"].to_csv(os.path.join(out, "history.csv"))
        _write_json(os.path.join(out, CONFIG_NAME), run_config)
    params = sum(int(p.size) for p in model.parameters())
    if main:
        print(f"training {model_name} ({params:,} parameters) on {data['name']}: {len(data['train'][1])} train, "
              f"{len(data['val'][1])} validation, {len(data['test'][1])} test samples; {optimizer_name} lr={lr:g}, "
              f"batch {batch_size}, {epochs} epochs, seed {seed}"
              + (f"; resuming after epoch {resumed['epoch']}" if resumed is not None else "")
              + (f"; data-parallel on {rb.distributed.world_size()} processes" if rb.distributed.world_size() > 1 else ""))
    start = time.perf_counter()
    history = trainer.fit(data["train"], val=data["val"], epochs=epochs, batch_size=batch_size, seed=seed,
                          resume_from=checkpoint)
    seconds = time.perf_counter() - start
    last = {k: v[-1] for k, v in history.history.items()}
    diverged = [k for k in ("loss", "val_loss") if k in last and not math.isfinite(last[k])]
    if nan_guard.terminated_at is not None or diverged:
        epoch = nan_guard.terminated_at[0] if nan_guard.terminated_at else len(history) - 1
        if main:
            what = (diverged[-1] if diverged else "loss") if nan_guard.reason in (None, "loss") \
                else f"parameter {nan_guard.reason!r}"
            print(f"rosenblatt: error: the {what} stopped being finite in epoch {epoch + 1}; training stopped. "
                  f"{CHECKPOINT_NAME} holds the last epoch with a finite loss and finite parameters; "
                  "start a new run with a smaller --lr (or check the data)", file=sys.stderr)
        return 1
    if not main:
        return 0
    test = trainer.evaluate(data["test"], batch_size=256)
    print("test: " + " - ".join(f"{k} {v:.4f}" for k, v in test.items()) + f"  ({seconds:.1f} s of training)")

    history.to_csv(os.path.join(out, "history.csv"))
    try:
        _plot_atomically(history, os.path.join(out, "curves.png"))
        wrote = ["history.csv", "curves.png"]
    except ImportError:
        print("note: matplotlib is not installed, so curves.png was not drawn (pip install 'rosenblatt[plots]')",
              file=sys.stderr)
        wrote = ["history.csv"]
    rb.save(model.state_dict(), os.path.join(out, "model.safetensors"),
            metadata={"model": model_name, "config": json.dumps(data["model_config"])})
    record = {"test": test, "train_seconds": round(seconds, 2), "epochs_run": len(history), "final": last,
              **run_config}
    _write_json(os.path.join(out, "metrics.json"), record)
    wrote += ["model.safetensors", "metrics.json", CHECKPOINT_NAME]
    print(f"wrote {', '.join(wrote)} to {out}")
    return 0


# ----------------------------------------------------------------------------------------------
# predict
# ----------------------------------------------------------------------------------------------


def _read_features_csv(path: str) -> np.ndarray:
    """Every column of a numeric CSV file (a header row is skipped)."""
    import csv

    try:
        with open(path, newline="") as f:
            rows = [row for row in csv.reader(f) if row]
    except OSError as exc:
        raise ValueError(f"--data csv: cannot read '{path}': {exc.strerror or exc}") from None
    try:
        float(rows[0][0])
    except (ValueError, IndexError):
        rows = rows[1:]
    try:
        return np.asarray(rows, dtype=np.float32)
    except ValueError:
        raise ValueError(f"--data csv: '{path}' holds non-numeric features") from None


def _predict_inputs(spec: str, config: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw inputs (before the run's preprocessing) and, when the data has them, the labels."""
    from rosenblatt.data import datasets

    if spec.endswith(".npy") and ":" not in spec:
        return np.load(spec, allow_pickle=False), None
    kind, _, rest = spec.partition(":")
    if kind.lower() == "csv":
        path, sep, target = rest.rpartition(":")
        if not sep or os.path.isfile(rest):
            return _read_features_csv(rest), None
        x, y = datasets.from_csv(path, target=int(target) if target.lstrip("-").isdigit() else target)
        return x, y
    test = _load_data(spec, int(config.get("seed", 0)))["test"]
    return test[0], test[1]


def cmd_predict(args: argparse.Namespace) -> int:
    """``rosenblatt predict``."""
    import csv

    import rosenblatt as rb
    from rosenblatt.io.run import load_run
    from rosenblatt.train import Trainer

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    model, info = load_run(args.run)
    raw, labels = _predict_inputs(args.data, info["config"])
    x = info["preprocess"](raw)
    outputs = Trainer(model, "mse").predict(x, batch_size=args.batch_size)
    out = args.out or os.path.join(args.run, "predictions.csv")
    classification = info["task"] == "classification"
    with open(out + ".tmp", "w", newline="") as f:  # written whole, then renamed: never half a file
        writer = csv.writer(f, lineterminator="\n")
        if classification:
            probabilities = rb.softmax(rb.tensor(outputs), axis=1).numpy()
            predicted = outputs.argmax(axis=1)
            writer.writerow(["index", "prediction", *(f"p{k}" for k in range(outputs.shape[1]))])
            for i, (label, row) in enumerate(zip(predicted, probabilities)):
                writer.writerow([i, int(label), *(f"{p:.6g}" for p in row)])
        else:
            values = outputs.reshape(len(outputs), -1)
            writer.writerow(["index", *(["prediction"] if values.shape[1] == 1 else
                                        [f"prediction_{k}" for k in range(values.shape[1])])])
            for i, row in enumerate(values):
                writer.writerow([i, *(f"{v:.6g}" for v in row)])
    os.replace(out + ".tmp", out)
    summary = f"{len(outputs)} predictions of {info['config']['model']} written to {out}"
    if labels is not None and classification:
        summary += f"; accuracy {np.mean(predicted == np.asarray(labels)):.4f}"
    elif labels is not None:
        summary += f"; mae {np.mean(np.abs(outputs.reshape(-1) - np.asarray(labels, np.float32).reshape(-1))):.4f}"
    print(summary)
    return 0


# ----------------------------------------------------------------------------------------------
# info, experiment, bench
# ----------------------------------------------------------------------------------------------

_EXTRAS = [("fast", "onednn-cpu-gomp"), ("plots", "matplotlib"), ("progress", "tqdm"), ("io", "safetensors"), ("data", "scikit-learn"),
           ("tune", "optuna"), ("onnx", "onnx"), ("onnx", "onnxruntime"), ("mpi", "mpi4py"), ("gpu", "cupy-cuda12x"),
           ("tests", "torch")]


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def cmd_info(args: argparse.Namespace) -> int:
    """``rosenblatt info``."""
    import platform

    import rosenblatt as rb
    from rosenblatt.data.datasets import FASHION_MNIST_ROOT

    print(f"rosenblatt {rb.__version__}  (python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.system()} {platform.machine()})")
    gpus = rb.cuda.device_count() if _version("cupy-cuda12x") or _version("cupy") else 0
    print("backends: numpy (cpu)" + (f", cupy ({gpus} GPU{'s' if gpus != 1 else ''})" if gpus else
                                     ", cupy not available (pip install 'rosenblatt[gpu]' on a machine with a GPU)"))
    from rosenblatt.kernels import threads

    print(f"kernels: {rb.backend.kernels()}")
    policy = threads.policy_info()
    blas = policy["blas"] + ("" if policy["blas_threads"] is None else f", {policy['blas_threads']} threads now")
    print(f"threads: {policy['threads']} (rb.set_num_threads; {policy['cores']} cores usable; "
          f"{'fixed' if not policy['adaptive'] else 'fewer on a busy machine'})  BLAS: {blas}")
    print("optional extras:")
    for extra, dist in _EXTRAS:
        version = _version(dist)
        state = version if version else "not installed"
        print(f"  {dist:<16} {state:<16} [{extra}]")
    print("data: digits " + ("available (scikit-learn)" if _version("scikit-learn") else "needs scikit-learn")
          + "; fashion-mnist " + (f"in {FASHION_MNIST_ROOT}" if os.path.isdir(FASHION_MNIST_ROOT)
                                  else "not found (apt-get install dataset-fashion-mnist, or --data fashion-mnist:DIR)"))
    try:
        from rosenblatt.models import MODELS

        print("models: " + ", ".join(sorted(set(MODELS) | {"mlp"})))
    except ImportError:
        pass
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    """``rosenblatt experiment``: dispatch to :mod:`rosenblatt.experiments`."""
    try:
        import rosenblatt.experiments as experiments
    except ImportError:
        experiments = None
    if experiments is None or not hasattr(experiments, "run"):
        print("rosenblatt: the experiments are not available in this installation", file=sys.stderr)
        return 1
    if args.list or not args.name:
        for name, claim in experiments.list_experiments():
            print(f"{name:<26} {claim}")
        return 0
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    experiments.run(args.name, out=args.out, quick=args.quick, seed=args.seed)
    return 0


def _find_benchmarks() -> str | None:
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (os.getcwd(), os.path.dirname(os.path.dirname(here))):
        path = os.path.join(folder, "benchmarks", "run.py")
        if os.path.isfile(path):
            return path
    return None


def cmd_bench(args: argparse.Namespace) -> int:
    """``rosenblatt bench``: run ``benchmarks/run.py`` of a source checkout."""
    import runpy

    path = _find_benchmarks()
    if path is None:
        print("rosenblatt: benchmarks/run.py not found (the benchmarks live in a source checkout; run from its root)",
              file=sys.stderr)
        return 1
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [path, *args.args]
    sys.path.insert(0, os.path.dirname(os.path.dirname(path)))
    try:
        module = runpy.run_path(path, run_name="rosenblatt_bench")
        if "main" in module:
            result = module["main"](list(args.args))
            return int(result or 0)
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


COMMANDS = {"train": cmd_train, "predict": cmd_predict, "info": cmd_info, "experiment": cmd_experiment, "bench": cmd_bench}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rosenblatt`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    debug = os.environ.get("ROSENBLATT_DEBUG") == "1"
    try:
        if argv[:1] == ["bench"]:  # everything after `bench` belongs to benchmarks/run.py, options included
            args = argparse.Namespace(command="bench", args=argv[1:])
        else:
            args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"rosenblatt: error: {_one_line(exc).removeprefix('rosenblatt: ')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rosenblatt: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        kind = "" if isinstance(exc, (ValueError, OSError, ImportError, TypeError)) else f"{type(exc).__name__}: "
        print(f"rosenblatt: error: {kind}{_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
