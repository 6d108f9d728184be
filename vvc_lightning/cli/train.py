"""`fit`, `validate` and `test` sub-commands."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add fit / validate / test."""
    fit = sub.add_parser("fit", help="train a model (stages, DDP, logging, checkpoints)")
    fit.add_argument("--config", action="append", default=[], help="config file or packaged name; repeatable")
    fit.add_argument("--ckpt", help="resume from this checkpoint (weights, optimizer, step, stage)")
    fit.add_argument("overrides", nargs="*", help="key.sub=value overrides, applied last")
    _print_config_flag(fit)
    fit.set_defaults(func=run_fit)
    for name, text in (
        ("validate", "validation metrics"),
        ("test", "rate / quality metrics on the test split"),
    ):
        p = sub.add_parser(name, help=f"{text} of a checkpoint")
        p.add_argument("--ckpt", required=True, help="checkpoint written by fit (its config is stored in it)")
        p.add_argument("overrides", nargs="*", help="key.sub=value overrides of the stored config")
        _print_config_flag(p)
        p.set_defaults(func=run_eval, split=name)


def _print_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--print-config", "--print_config", action="store_true", dest="print_config",
                        help="print the resolved config as YAML (fit --config takes it back) and exit")


def run_fit(args: argparse.Namespace) -> int:
    """Train."""
    from vvc_lightning.configuration.config import load_config
    from vvc_lightning.training.preflight import precheck_machine

    cfg = load_config(  # devices checked before the rest (not when only printing the config)
        args.config, args.overrides, precheck=None if args.print_config else precheck_machine
    )
    if args.print_config:
        from vvc_lightning.configuration.config import to_yaml

        print(to_yaml(cfg), end="")
        return 0
    from vvc_lightning.training.trainer import fit

    trainer = fit(cfg, args.ckpt)
    if trainer.is_global_zero:
        print(f"checkpoints and logs in {cfg.run_dir} (last: {cfg.run_dir}/last.ckpt)")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Validate or test a checkpoint and print its metrics (test: also written into the run folder)."""
    from vvc_lightning.training.trainer import evaluate_split, stored_config

    if args.print_config:
        from vvc_lightning.configuration.config import to_yaml

        print(to_yaml(stored_config(args.ckpt, args.overrides)[0]), end="")
        return 0
    results = evaluate_split(args.split, args.ckpt, args.overrides)
    for i, res in enumerate(results):
        print(f"{args.split} results (dataloader {i}):")
        for k, v in sorted(res.items()):
            print(f"  {k:28s} {v:.6g}")
    if args.split == "test" and results:
        _print_before_after(args.ckpt, args.overrides, results[0])
    return 0


def _print_before_after(ckpt: str, overrides: list[str], after: dict[str, float]) -> None:
    """A run that started from a trained model (model.init): that model's test figures beside these."""
    from vvc_lightning.training.before_after import before_after_table, start_model, test_start_model
    from vvc_lightning.training.trainer import stored_config

    cfg, source = stored_config(ckpt, overrides)
    spec = start_model(source, cfg)
    before = test_start_model(cfg, spec) if spec else None
    if before:
        print(before_after_table(spec, ckpt, before, after))
