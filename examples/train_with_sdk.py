"""A training script that reports to TuneDeck through the SDK.

Standalone:          python -m examples.train_with_sdk --experiment "sdk demo"
As a registered command (see commands.example.toml): the worker sets TUNEDECK_RUN_ID and
TUNEDECK_OUTPUT_DIR, the script attaches to that run, and the worker registers the adapter.

It fits a low-rank update B·A to a frozen random linear map by gradient descent: small, real
and fast, so it shows the whole path without a GPU.
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from core import tracking
from core.settings import get_settings


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="sdk example", help="experiment name when run outside a worker")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument(
        "--output", default=None, help="adapter folder (default: TUNEDECK_OUTPUT_DIR, or sdk-example under the data folder)"
    )
    return parser.parse_args()


def main() -> None:
    args = arguments()
    inside_worker = "TUNEDECK_RUN_ID" in os.environ
    params = {"learning_rate": args.learning_rate, "max_steps": args.steps, "lora_rank": args.rank}
    output = Path(args.output or os.environ.get("TUNEDECK_OUTPUT_DIR") or get_settings().data_dir / "sdk-example")
    rng = np.random.default_rng(0)
    frozen = rng.normal(size=(16, 16))
    target = frozen + rng.normal(size=(16, args.rank)) @ rng.normal(size=(args.rank, 16)) * 0.3
    a, b = rng.normal(size=(args.rank, 16)) * 0.1, np.zeros((16, args.rank))
    x = rng.normal(size=(256, 16))
    with tracking.start_run(None if inside_worker else args.experiment, params=params) as run:
        for step in range(1, args.steps + 1):
            if run.should_stop:
                print(f"cancelled at step {step}", flush=True)
                break
            error = x @ (frozen + b @ a).T - x @ target.T
            loss = float(np.mean(error**2))
            grad = 2 * error.T @ x / error.size
            a, b = a - args.learning_rate * b.T @ grad, b - args.learning_rate * grad @ a.T
            run.log({"loss": loss, "learning_rate": args.learning_rate}, step=step)
        output.mkdir(parents=True, exist_ok=True)
        save_file(
            {"lora_A.weight": a.astype(np.float32), "lora_B.weight": b.astype(np.float32)},
            str(output / "adapter_model.safetensors"),
        )
        (output / "adapter_config.json").write_text(
            json.dumps({"peft_type": "LORA", "r": args.rank, "base_model_name_or_path": "toy-linear"})
        )
        run.register_adapter(output, base_model="toy-linear")
        print(f"final loss {loss:.4f}; adapter written to {output}", flush=True)
    if not inside_worker:  # the block registered it: TuneDeck keeps its own copy, which resolve_adapter finds
        print(f"registered with run {run.id}: tracking.resolve_adapter('{args.experiment}') gives its folder", flush=True)


if __name__ == "__main__":
    main()
