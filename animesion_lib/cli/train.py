"""Train a model: character recognition, optionally tag prediction and tag input (vilt_*).

Every option is a field of animesion_lib.train.TrainConfig. Under torchrun the same command
trains with DDP on every process torchrun starts:

    animesion train --data data/synthetic --model vit_tiny_p8 --head ifa --epochs 3
    animesion train --data data/synthetic --model vilt_tiny_p8 --predict-tags --mask-schedule cosine
    torchrun --nproc_per_node 4 -m animesion_lib.cli train --data /data/dafre --model vit_b16 --image-size 128
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing

HELP = "train a model (TrainConfig options; DDP under torchrun)"


def _base_type(hint):
    """``int | None`` -> (int, True); ``bool`` -> (bool, False)."""
    args = typing.get_args(hint)
    if type(hint) is types.UnionType or typing.get_origin(hint) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return inner[0], True
    return hint, False


def _none_or(kind):
    def parse(text: str):
        return None if text.lower() in ("none", "null", "") else kind(text)
    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def add_config_arguments(parser: argparse.ArgumentParser, config_class) -> None:
    """One ``--option-name`` per dataclass field, typed, with the field's help text and default."""
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        kind, optional = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f.metadata.get("help", "")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif kind is dict:
            parser.add_argument(flag, type=json.loads, default=default, metavar="JSON", help=help_text)
        else:
            parser.add_argument(flag, type=_none_or(kind) if optional else kind, default=default,
                                metavar=kind.__name__.upper(), help=help_text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from animesion_lib.config import TrainConfig

    add_config_arguments(parser, TrainConfig)
    parser.add_argument("--summary-json", default=None, metavar="PATH",
                        help="also write the run's summary (metrics, curves, ...) to this JSON file")


def run(args: argparse.Namespace) -> int:
    from animesion_lib.train import TrainConfig, train

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    summary = train(cfg)
    if args.summary_json:
        with open(args.summary_json, "w") as f:
            json.dump(summary, f, indent=2, default=str)
    metrics = summary["metrics"]
    # val_/test_ metrics carry the text mode of a multimodal model (val_tags.top1): match the ends
    shown = {k: v for k, v in metrics.items()
             if k == "train_loss" or (k.startswith(("val_", "test_")) and k.endswith(("top1", "top5", "mean_class_acc")))}
    if shown:
        print("final: " + " ".join(f"{k} {v:.4f}" for k, v in shown.items()))
    if summary.get("record"):
        print(f"results record: {summary['record']}")
    return 0


if __name__ == "__main__":  # python -m animesion_lib.cli.train ... (this subcommand alone)
    import sys

    _parser = argparse.ArgumentParser(prog="animesion train", description=__doc__,
                                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
